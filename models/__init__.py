"""The expansion model: pure functions on `marts.account_features` DataFrames
(marts.account_snapshots plus one column `<metric>__<stat>` per declared usage metric and stat).

- `params.load_params()` -> `Params` (from `models/params.yaml`); `derived`: the derived
  features' formulas; `Params.with_usage_features(business, columns, locale)` adds the usage
  features (`usage_features`: found by name, phrased from `business`: the declaration in
  config/business.yml, loaded by `business.load_business`)
- `phrasebook`: the phrase table of a locale (`models/phrases/<locale>.yaml`: words, usage
  phrases, money, and that language's reason phrases, offer labels, suppression reasons and
  report texts) and `ReasonTemplate`; `Params.localized(locale)` puts the table's phrases in
  place of params.yaml's English ones
- `money.format_money(amount, currency, locale)`: an amount in an ISO 4217 currency as written
  in a locale ($1,234; 1,234円)
- `features`: `prepare_features`, `training_frame`, `scoring_frame`, `label_array`
- `train.train_model(snapshots, params)` -> `TrainedModel` (backtest + final models), built from
  `splits` (time-ordered splits, never random), `booster` (LightGBM with early stopping and
  refit), `calibration` (Platt or isotonic), `baselines` (logistic regression, best single
  rule) and `backtest` (`run_backtest`: metrics and test-row predictions per cut-off)
- `score.score_accounts(model, snapshots, as_of, params, owners=..., locale=, currency=)` ->
  one row per account: probabilities, offer and its MRR (in the reporting currency, named in
  `reporting_currency`), action rank, touch tier (with capacity), suppression, reasons (texts
  in `locale`)
- `offers.next_best_offers(frame, probs, params, locale=)`: the upsell or cross-sell the
  catalogue offers (marts.account_offers, in dbt), what it changes and its MRR
- `ranking`: the action list's order (`p_expansion x offer_mrr^w`, w chosen on the backtest),
  suppression, which accounts get reasons, and the hit rate and MRR found per cut-off
- `reasons.top_reasons(model, X, snapshots)` -> phrases for the top contributions
- `evaluate`: `binary_metrics`, `calibration_table`, `backtest_table` (vs the oracle)
- `acceptance.assess(predictions, params, oracle=None)`: the one evaluation of a model, its
  backtest pooled over the cut-offs with bootstrap intervals and the bars (promotion, make
  evaluate and the report all call it)
- `promotion.decide_promotion(challenger, champion, snapshots, params)`: the bars, then the
  paired comparison with the champion on the rows both predicted
- `alerts.alerts_on_change(current, previous, threshold, touch_tiers=...)`: alerts between two
  scoring runs (tier up, probability crossing the threshold)
- `psi`: population stability index of the rows to score against the training rows (drift)
- `fingerprint`: `frame_fingerprint`, `data_fingerprint` (data lineage, training-cache key)
- `report.render_report(model, snapshots, scores, oracle=None, chart_cache=None, locale=,
  currency=)` -> one offline HTML page, its texts in `locale` (`charts` draws its figures,
  `report_html` holds its HTML building blocks, `report_actions` its action-list sections;
  report.py reads its HTML template)
- `distributed`: the pure parts of scoring and training on a Dask cluster

No Prefect, no database and no file writes here (`make lint` holds it with an import
contract): the flows read the mart, write the scores, the report and its chart cache
(`flows/files.py`), and keep the models on disk (`flows/registry.py`).
"""
