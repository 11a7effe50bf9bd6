//! Time in blocks: a time dimension's periods, the spine of empty periods, and which
//! rows a period keeps.

use datafusion::logical_expr::when;

use super::*;

impl<'a> Compiler<'a> {
    /// The value bound to `$name`, or an error at `site` naming the nearest one.
    pub(super) fn bound(&self, site: &ExprSite, name: &str) -> Result<&ScalarValue, ReportError> {
        self.bindings.0.get(name).ok_or_else(|| {
            site.error(format!(
                "unknown setting or parameter `${name}`{}",
                did_you_mean(name, self.bindings.names())
            ))
            .into()
        })
    }

    /// The block's time dimension, if it has one: (name, time expression text, grain).
    pub(super) fn time_dimension(
        &self,
        report: &Report,
        i: usize,
        dims: &[(String, ExprSpec)],
    ) -> Result<Option<(String, TimeSpec, Grain)>, ReportError> {
        let mut found = None;
        for (d, spec) in dims {
            let Some(time) = &spec.time else {
                if spec.grain.is_some() {
                    let site = self.block_site(report, i, &join(&join("by", d), "grain"), None);
                    return Err(site.error("`grain` goes with `time:`").into());
                }
                continue;
            };
            let site = self.block_site(
                report,
                i,
                &join(&join("by", d), "grain"),
                Some(&format!("dimension `{d}`")),
            );
            if found.is_some() {
                return Err(site.error("a block has at most one time dimension").into());
            }
            if spec.expr.is_some() {
                return Err(site
                    .error("a time dimension takes `time:` (and `grain:`), not `expr:`")
                    .into());
            }
            let grain_text = match spec.grain.as_deref() {
                None => "month".to_string(),
                Some(g) => match g.strip_prefix('$') {
                    Some(name) => match self.bound(&site, name)? {
                        ScalarValue::Utf8(Some(v)) => v.clone(),
                        _ => {
                            return Err(site
                                .error(format!("`${name}` must be a text setting or parameter"))
                                .into());
                        }
                    },
                    None => g.to_string(),
                },
            };
            let grain = Grain::parse(&grain_text).ok_or_else(|| {
                ReportError::from(site.error(format!(
                    "unknown grain `{grain_text}`{}; grains are {}",
                    did_you_mean(&grain_text, Grain::NAMES.iter().copied()),
                    Grain::NAMES.join(", ")
                )))
            })?;
            found = Some((d.clone(), time.clone(), grain));
        }
        Ok(found)
    }

    /// `t` within the run's period: timestamps against the period's instants in the
    /// client's zone, dates against its days.
    pub(super) fn in_period(
        &self,
        site: &ExprSite,
        t: &Expr,
        schema: &DFSchema,
    ) -> Result<Expr, ReportError> {
        let bound = |name: &str| Expr::Literal(self.bindings.0[name].clone(), None);
        match t.get_type(schema) {
            Ok(arrow::datatypes::DataType::Timestamp(..)) => Ok(t
                .clone()
                .gt_eq(bound("period_start"))
                .and(t.clone().lt(bound("period_end")))),
            Ok(arrow::datatypes::DataType::Date32) => Ok(t
                .clone()
                .gt_eq(bound("from"))
                .and(t.clone().lt_eq(bound("to")))),
            Ok(other) => Err(site
                .error(format!("`time` must be a timestamp or a date, not {other}"))
                .into()),
            Err(e) => Err(site.error(expr::clean(&e.to_string())).into()),
        }
    }

    pub(super) fn period_start_expr(&self, grain: Grain, t: Expr) -> Result<Expr, ReportError> {
        let udf = self
            .state
            .scalar_functions()
            .get("period_start")
            .cloned()
            .ok_or_else(|| ReportError::bad_input("period_start", "function not registered"))?;
        let name = Grain::NAMES[[
            Grain::Day,
            Grain::Week,
            Grain::Month,
            Grain::Quarter,
            Grain::Year,
        ]
        .iter()
        .position(|g| *g == grain)
        .expect("every grain has a name")];
        Ok(udf.call(vec![
            Expr::Literal(ScalarValue::Utf8(Some(name.into())), None),
            t,
        ]))
    }

    /// The distinct values of a dimension's dictionary (`all_values`), as a frame of the one
    /// column `dim`.
    pub(super) fn dictionary(
        &self,
        report: &Report,
        i: usize,
        dim: &str,
        all: &crate::spec::AllValues,
    ) -> Result<DataFrame, ReportError> {
        let path = join(&join("by", dim), "all_values");
        let site = self.block_site(report, i, &path, Some(&format!("dimension `{dim}`")));
        let mut df = self.source_frame(
            &all.from,
            &report.src,
            &join(&path, "from"),
            &site.context,
            &mut Vec::new(),
        )?;
        if let Some(w) = &all.filter {
            let s = ExprSite {
                path: join(&path, "where"),
                ..site.clone()
            };
            df = self.filter(df, &s, w)?;
        }
        let s = ExprSite {
            path: join(&path, "column"),
            ..site.clone()
        };
        let value = self.row_expr(&s, &all.column, &df)?;
        df.select(vec![value.alias(dim)])
            .and_then(|d| d.distinct())
            .map_err(|e| df_error(&report.src, &path, &site.context, e))
    }

    /// A period's label, honest about the first one: a period that begins before the
    /// run's `from` (a week from Monday 28 September in a run from 1 October) counts only
    /// from `from`, and is labelled so.
    pub(super) fn within_period(&self, start: Expr) -> Expr {
        let from = Expr::Literal(self.bindings.0["from"].clone(), None);
        when(start.clone().lt(from.clone()), from)
            .otherwise(start)
            .expect("a CASE with one branch and an ELSE")
    }

    /// Every period of the run's range up to `as_of` (a period that has not begun by then
    /// has nothing to count: it is left out rather than shown as zeros), for every
    /// combination of the other dimensions that occurs, so that empty periods appear as
    /// rows (0 or null), never go missing. Labels as `within_period` gives them.
    pub(super) fn period_spine(
        &self,
        parts: &[DataFrame],
        dims: &[String],
        time_dim: &str,
        grain: Grain,
    ) -> datafusion::error::Result<DataFrame> {
        let days = |name: &str| match &self.bindings.0[name] {
            ScalarValue::Date32(Some(d)) => crate::time::date_from_days(*d),
            _ => unreachable!("`from` and `to` are bound as dates"),
        };
        let (from, to) = (days("from"), days("to"));
        let last = days("as_of").max(from).min(to);
        let periods: Vec<Vec<Expr>> = grain
            .periods(from, to)
            .into_iter()
            .filter(|p| *p <= last)
            .map(|p| p.max(from))
            .map(|p| {
                vec![Expr::Literal(
                    ScalarValue::Date32(Some(crate::time::days_since_epoch(p))),
                    None,
                )]
            })
            .collect();
        let values = LogicalPlanBuilder::values(periods)?.build()?;
        let periods = DataFrame::new(self.state.clone(), values)
            .select(vec![column("column1").alias(time_dim)])?;
        self.values_spine(parts, dims, time_dim, periods)
    }

    /// Every value of `values` (a frame of the one column `dim`) for every combination of
    /// the other dimensions that occurs in `parts`: rows with nothing to count, so that
    /// they show as 0 (or null), never go missing.
    pub(super) fn values_spine(
        &self,
        parts: &[DataFrame],
        dims: &[String],
        dim: &str,
        values: DataFrame,
    ) -> datafusion::error::Result<DataFrame> {
        let others: Vec<&String> = dims.iter().filter(|d| d.as_str() != dim).collect();
        if others.is_empty() {
            return Ok(values);
        }
        let mut keys: Option<DataFrame> = None;
        for p in parts {
            let k = p
                .clone()
                .select(others.iter().map(|d| column(d)).collect::<Vec<Expr>>())?;
            keys = Some(match keys {
                None => k,
                Some(all) => all.union(k)?,
            });
        }
        let keys = keys.expect("at least one part").distinct()?;
        let plan = LogicalPlanBuilder::from(keys.logical_plan().clone())
            .cross_join(values.logical_plan().clone())?
            .build()?;
        DataFrame::new(self.state.clone(), plan)
            .select(dims.iter().map(|d| column(d)).collect::<Vec<Expr>>())
    }
}
