"""The expansion model: pure functions on `marts.account_snapshots` DataFrames.

- `models.params.load_params()` -> `Params` (from `models/params.yaml`)
- `models.features`: `prepare_features`, `training_frame`, `scoring_frame`
- `models.train.train_model(snapshots, params)` -> `TrainedModel` (backtest + final models)
- `models.score.score_accounts(model, snapshots, as_of, params, owners=...)` -> one row per
  account: probabilities, offer and its MRR, action rank, touch tier (with capacity),
  suppression, reasons
- `models.offers`: next-best offer and the MRR it adds (values learned at training time)
- `models.reasons.top_reasons(model, X, snapshots)` -> phrases for the top contributions
- `models.evaluate`: `binary_metrics`, `calibration_table`, `backtest_table` (vs the oracle)
- `models.report.render_report(model, snapshots, scores, oracle=None)` -> one offline HTML page
- `flows.registry`: `save_model`, `load_model`, `champion_version`, `should_promote`,
  `promote`, `rollback`, `list_models` (the only module that writes files; report.py only
  reads its HTML template)

No Prefect and no database here: the flows read the mart and write the scores.
"""
