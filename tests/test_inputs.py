"""What a command may write (arcsolver/inputs.py): a run of ours, known by its settings' sections."""


def test_a_run_of_ours_is_recognised_by_the_sections_of_the_settings():
    from arcsolver.config import PretrainConfig
    from arcsolver.inputs import RUN_SECTIONS

    assert RUN_SECTIONS == set(PretrainConfig.model_fields)
