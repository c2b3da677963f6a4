

def test_uncertainty_run_exports_its_weights_and_finetunes_with_a_new_centre_branch(
        three_centres, tmp_path):
    from hnprog.presets import from_preset
    from hnprog.training import finetune

    run = train_on_cohort(three_centres, tmp_path / "run", verbose=0,
                          config=TINY.replace(loss_weighting="uncertainty"))
    layer = from_preset(run.preset).model.get_layer("loss_weighting")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.log_variances),
                               keras.ops.convert_to_numpy(
                                   run.model.get_layer("loss_weighting").log_variances))
    tuned = finetune(three_centres, tmp_path / "ft", source=tmp_path / "run", verbose=0,
                     config=TINY.replace(loss_weighting="uncertainty", adversarial_centres=0.2,
                                         learning_rate=1e-4))
    assert "centre" in tuned.model.output and "centre" not in from_preset(tuned.preset).outputs
