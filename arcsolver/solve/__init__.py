"""Solving tasks: augmented inference, voting, scoring (and, later, test-time adaptation)."""
