"""Visual reports: a training run's curves as a PNG (`curves`), an evaluation as an HTML page (`html`)."""
