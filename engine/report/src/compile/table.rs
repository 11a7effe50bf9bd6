//! Table blocks: analysed once into a `TablePlan`; each grouping (rows, subtotals,
//! totals, child levels) then aggregates each model by its dimensions, stacks and folds
//! the parts, and computes the measures over measures.

use super::*;

/// What a block measure is, decided once per block.
enum Out {
    /// A model measure under the block's name.
    Alias(Measure),
    /// An aggregate over the rows of the block's `from:` model.
    Inline { expr: Expr, empty: Empty },
    /// A combination of other measures (or a constant), computed after the aggregates.
    Derived { resolved: Resolved, site: ExprSite },
    /// A measure of `model` over a shifted period: a model measure, or an inline
    /// aggregate (re-planned with the shifted values).
    Shifted {
        model: String,
        shift: Shift,
        measure: Option<String>,
        resolved: Resolved,
    },
}

/// A table block analysed once: what each measure is, the aggregates each model (and each
/// shifted period) contributes, and the steps over them in order. Every grouping of the
/// block — its rows, subtotals, totals row and child levels — is built from this.
pub(super) struct TablePlan<'a> {
    block: usize,
    /// The models the block reads; the first gives the dimensions' metadata.
    models: Vec<String>,
    from: Option<String>,
    /// The block's measures in their order: what each is, its site and its text.
    outs: IndexMap<String, (Out, ExprSite, String)>,
    /// Aggregates over rows, per model and shift: column, expression, value when empty.
    base: IndexMap<Part, Vec<(String, Expr, Empty)>>,
    /// The compiler of each shifted period the block reads.
    shifted: HashMap<Shift, Arc<Compiler<'a>>>,
    /// Measures over measures, by column.
    derived: IndexMap<String, (Resolved, ExprSite)>,
    /// Block measures that name a model measure: block column → model measure column.
    copies: HashMap<String, String>,
    /// Lookup steps and outputs: step → its key's column (a block measure's or a
    /// dimension), output → its step.
    lookup_deps: HashMap<String, String>,
    /// Copies, lookups and derived measures, each after what it uses.
    order: Vec<String>,
}

impl<'a> Compiler<'a> {
    /// Plans a measure that aggregates the rows of `df`; refuses one that does not.
    pub(super) fn aggregate_measure(
        &self,
        site: &ExprSite,
        resolved: &Resolved,
        df: &DataFrame,
        spec: &ExprSpec,
    ) -> Result<(Expr, Empty), ReportError> {
        let expr = self.plan(site, resolved, df.schema())?;
        if find_aggregate_exprs([&expr]).is_empty() {
            return Err(site
                .error("a measure must aggregate rows (count, sum, avg, min, max …) or combine other measures")
                .into());
        }
        let empty = spec.empty.unwrap_or_else(|| default_empty(&expr));
        Ok((expr, empty))
    }

    /// Analyses table block `i`: the names its expressions see, what each measure is,
    /// the aggregates per model and the order of the steps over them.
    pub(super) fn table_plan(
        &self,
        report: &Report,
        i: usize,
    ) -> Result<TablePlan<'a>, ReportError> {
        let block = &report.spec.blocks[i];
        let models = self.block_models(report, i)?;
        if models.is_empty() {
            return Err(self
                .block_site(report, i, "", None)
                .error("name the model with `from:` or qualify measures as `model.measure`")
                .into());
        }
        let from = block.from.clone();
        let mut measures: IndexMap<String, Arc<IndexMap<String, Measure>>> = IndexMap::new();
        for m in &models {
            measures.insert(m.clone(), self.model_measures(m)?);
        }
        let from_cols = match &from {
            Some(f) => frame_columns(&self.model_frame(f, true, &mut Vec::new())?),
            None => Vec::new(),
        };
        // Every dimension some grouping of the block has: its own and its children's.
        let mut dim_names: Vec<String> = Vec::new();
        for d in block
            .by
            .names()
            .chain(block.children.iter().flat_map(|c| c.by.names()))
        {
            if !dim_names.iter().any(|n| n == d) {
                dim_names.push(d.to_string());
            }
        }

        // The names block expressions see.
        let mut scope = column_scope(&from_cols);
        for q in self.catalog.models.keys() {
            scope.add_qualifier(q);
        }
        for (model, ms) in &measures {
            for m in ms.keys() {
                let target = Target {
                    column: measure_column(model, m),
                    kind: TargetKind::Measure {
                        model: model.clone(),
                        name: m.clone(),
                    },
                };
                scope.add(Some(model), m, target.clone());
                if from.as_deref() == Some(model.as_str()) {
                    scope.add(None, m, target);
                }
            }
        }
        // Block measures shadow the model's, except inside their own definition, where a
        // bare `x` means the model's measure `x`.
        let mut block_scope = scope.clone();
        let block_target = |name: &str| Target {
            column: block_column(name),
            kind: TargetKind::BlockMeasure(name.to_string()),
        };
        for lk in &block.lookups {
            for (name, _) in lk.take.iter() {
                block_scope.add(None, name, block_target(name));
            }
        }
        for d in &dim_names {
            block_scope.add(
                None,
                d,
                Target {
                    column: d.to_string(),
                    kind: TargetKind::Dimension(d.to_string()),
                },
            );
        }
        for (name, _) in block.measures.iter() {
            block_scope.add(None, name, block_target(name));
        }

        let mut outs: IndexMap<String, (Out, ExprSite, String)> = IndexMap::new();
        for (name, spec) in block.measures.iter() {
            let site = self.block_site(
                report,
                i,
                &join("measures", name),
                Some(&format!("measure `{name}`")),
            );
            let text = spec.expr.clone().unwrap_or_else(|| name.clone());
            let mut own_scope = block_scope.clone();
            if let Some(target) = scope_target(&scope, name) {
                own_scope.add(None, name, target);
            } else {
                own_scope.remove(name);
            }
            let resolved = expr::resolve_layered(
                &self.state,
                &site,
                &text,
                &own_scope,
                Some(&column_scope(&from_cols)),
            )?;
            let has_columns = resolved.refs.iter().any(|t| t.kind == TargetKind::Column);
            let has_measures = resolved.refs.iter().any(|t| t.kind != TargetKind::Column);
            let out = if let Some(shift) = spec.shift {
                // A model measure, named directly or through a block measure that aliases it.
                let alias = match resolved.refs.as_slice() {
                    [
                        Target {
                            kind: TargetKind::Measure { model, name: m },
                            ..
                        },
                    ] if is_identifier(&text) => Some((model.clone(), m.clone())),
                    [
                        Target {
                            kind: TargetKind::BlockMeasure(b),
                            ..
                        },
                    ] if is_identifier(&text) => match outs.get(b) {
                        Some((Out::Alias(m), _, _)) => Some((m.model.clone(), m.name.clone())),
                        _ => None,
                    },
                    _ => None,
                };
                match alias {
                    Some((model, m)) => {
                        if matches!(measures[&model][&m].kind, MeasureKind::Derived { .. }) {
                            return Err(site
                                .error(format!("`shift` applies to a measure that aggregates rows; `{model}.{m}` combines other measures: shift those and combine them here"))
                                .into());
                        }
                        Out::Shifted {
                            model,
                            shift,
                            measure: Some(m),
                            resolved,
                        }
                    }
                    None if !has_measures => match &from {
                        Some(model) => Out::Shifted {
                            model: model.clone(),
                            shift,
                            measure: None,
                            resolved,
                        },
                        None => {
                            return Err(site
                                .error("`shift` on an aggregate over rows needs the block's `from:` (the model whose rows it aggregates), or name a model measure (`deals.won_sum`)")
                                .into());
                        }
                    },
                    None => {
                        return Err(site
                            .error("`shift` applies to a model measure or an aggregate over rows, not to a combination of measures")
                            .into());
                    }
                }
            } else if has_columns && has_measures {
                let c = resolved
                    .refs
                    .iter()
                    .find(|t| t.kind == TargetKind::Column)
                    .expect("checked");
                return Err(site
                    .error_near(&c.column, format!("column `{}` appears beside measures; put the aggregate in a measure of its own", c.column))
                    .into());
            } else if is_identifier(&text)
                && let [
                    Target {
                        kind: TargetKind::Measure { model, name: m },
                        ..
                    },
                ] = resolved.refs.as_slice()
            {
                Out::Alias(measures[model][m].clone())
            } else if has_measures {
                Out::Derived {
                    resolved,
                    site: site.clone(),
                }
            } else if resolved.refs.is_empty() && from.is_none() {
                // A constant (`$from`): computed beside the measures, with the run's values.
                Out::Derived {
                    resolved,
                    site: site.clone(),
                }
            } else {
                let f = from.as_deref().unwrap_or_default();
                let df = self.model_frame(f, true, &mut Vec::new())?;
                let planned = self.plan(&site, &resolved, df.schema())?;
                if resolved.refs.is_empty() && find_aggregate_exprs([&planned]).is_empty() {
                    Out::Derived {
                        resolved,
                        site: site.clone(),
                    }
                } else {
                    let (expr, empty) = self.aggregate_measure(&site, &resolved, &df, spec)?;
                    Out::Inline { expr, empty }
                }
            };
            outs.insert(name.clone(), (out, site, text));
        }

        // Everything the outputs need, split into per-model aggregates and derived steps.
        let mut base: IndexMap<Part, Vec<(String, Expr, Empty)>> = IndexMap::new();
        let mut shifted: HashMap<Shift, Arc<Compiler<'a>>> = HashMap::new();
        let mut derived: IndexMap<String, (Resolved, ExprSite)> = IndexMap::new();
        let mut pending: Vec<Target> = Vec::new();
        for (name, (out, _, _)) in &outs {
            match out {
                Out::Alias(m) => pending.push(Target {
                    column: measure_column(&m.model, &m.name),
                    kind: TargetKind::Measure {
                        model: m.model.clone(),
                        name: m.name.clone(),
                    },
                }),
                Out::Inline { expr, empty } => base
                    .entry((from.clone().unwrap_or_default(), None))
                    .or_default()
                    .push((block_column(name), expr.clone(), *empty)),
                Out::Shifted {
                    model,
                    shift,
                    measure,
                    resolved,
                } => {
                    let c = shifted
                        .entry(*shift)
                        .or_insert_with(|| self.shifted(*shift));
                    let (expr, empty) = match measure {
                        Some(m) => match &c.model_measures(model)?[m].kind {
                            MeasureKind::Base { expr, empty } => (expr.clone(), *empty),
                            MeasureKind::Derived { .. } => unreachable!("refused above"),
                        },
                        None => {
                            let df = c.model_frame(model, true, &mut Vec::new())?;
                            let spec = block.measures.get(name).cloned().unwrap_or_default();
                            c.aggregate_measure(&outs[name].1, resolved, &df, &spec)?
                        }
                    };
                    base.entry((model.clone(), Some(*shift)))
                        .or_default()
                        .push((block_column(name), expr, empty));
                }
                Out::Derived { resolved, site } => {
                    derived.insert(block_column(name), (resolved.clone(), site.clone()));
                    pending.extend(resolved.refs.iter().cloned());
                }
            }
        }
        let mut seen: Vec<String> = Vec::new();
        while let Some(t) = pending.pop() {
            if seen.contains(&t.column) {
                continue;
            }
            seen.push(t.column.clone());
            if let TargetKind::Measure { model, name } = &t.kind {
                let m = &measures[model][name];
                match &m.kind {
                    MeasureKind::Base { expr, empty } => base
                        .entry((model.clone(), None))
                        .or_default()
                        .push((t.column.clone(), expr.clone(), *empty)),
                    MeasureKind::Derived { resolved, site } => {
                        derived.insert(t.column.clone(), ((**resolved).clone(), site.clone()));
                        pending.extend(resolved.refs.iter().cloned());
                    }
                }
            }
        }
        if base.is_empty() {
            return Err(self
                .block_site(report, i, "measures", None)
                .error("the block aggregates nothing: at least one measure must count or sum rows")
                .into());
        }

        // Measures over measures, each after those it uses. A block measure that names a
        // model measure is copied under its block name, for the block's own expressions.
        let copies: HashMap<String, String> = outs
            .iter()
            .filter_map(|(name, (out, _, _))| match out {
                Out::Alias(m) => Some((block_column(name), measure_column(&m.model, &m.name))),
                _ => None,
            })
            .collect();
        // Lookups are steps too: `__lookup{k}` after its key, its outputs after it.
        let mut lookup_deps: HashMap<String, String> = HashMap::new();
        for (k, lk) in block.lookups.iter().enumerate() {
            let key = if outs.contains_key(&lk.key) {
                block_column(&lk.key)
            } else if dim_names.contains(&lk.key) {
                lk.key.clone()
            } else {
                return Err(self.unknown_lookup_key(report, i, k, &outs, &dim_names));
            };
            let step = format!("__lookup{k}");
            lookup_deps.insert(step.clone(), key);
            for (name, _) in lk.take.iter() {
                lookup_deps.insert(block_column(name), step.clone());
            }
        }
        let steps: Vec<String> = derived
            .keys()
            .chain(copies.keys())
            .chain(lookup_deps.keys())
            .cloned()
            .collect();
        let order = topo_order(steps.clone(), |c| {
            match copies.get(c).or(lookup_deps.get(c)) {
                Some(source) => vec![source.clone()]
                    .into_iter()
                    .filter(|d| steps.contains(d))
                    .collect(),
                None => derived[c]
                    .0
                    .refs
                    .iter()
                    .map(|t| t.column.clone())
                    .filter(|d| steps.contains(d))
                    .collect(),
            }
        })
        .map_err(|cycle| {
            let site = cycle
                .iter()
                .find_map(|c| derived.get(c).map(|(_, site)| site))
                .expect("a cycle runs through an expression");
            ReportError::from(site.error(format!(
                "measures refer to each other in a cycle: {}",
                cycle
                    .iter()
                    .map(|c| c.replace("__block__", "").replace("__", "."))
                    .collect::<Vec<_>>()
                    .join(" → ")
            )))
        })?;
        Ok(TablePlan {
            block: i,
            models,
            from,
            outs,
            base,
            shifted,
            derived,
            copies,
            lookup_deps,
            order,
        })
    }

    /// A lookup keyed by a name that is neither a block measure nor one of `dims`.
    fn unknown_lookup_key(
        &self,
        report: &Report,
        i: usize,
        k: usize,
        outs: &IndexMap<String, (Out, ExprSite, String)>,
        dims: &[String],
    ) -> ReportError {
        let key = &report.spec.blocks[i].lookups[k].key;
        let known = outs.keys().chain(dims).map(String::as_str);
        self.block_site(report, i, &join(&index("lookups", k), "key"), None)
            .error(format!(
                "unknown measure or dimension `{key}`{}",
                did_you_mean(key, known)
            ))
            .into()
    }

    /// One grouping of an analysed table block: with `group` its rows (or subtotals or a
    /// child level), without it its totals row.
    pub(super) fn table_grouping(
        &self,
        report: &Report,
        plan: &TablePlan<'a>,
        group: &[(String, ExprSpec)],
    ) -> Result<(DataFrame, Vec<ColumnMeta>), ReportError> {
        let i = plan.block;
        let block = &report.spec.blocks[i];
        let block_path = index("blocks", i);
        let err = |e| {
            df_error(
                &report.src,
                &block_path,
                &format!("report `{}`, block `{}`", report.id(), block.id),
                e,
            )
        };
        let dims = !group.is_empty();
        let dim_names: Vec<String> = group.iter().map(|(d, _)| d.clone()).collect();
        // A grouping by fewer dimensions than the block (a subtotal, the totals row) has
        // no value for the others: what depends on one of them cannot be computed there.
        for (k, lk) in block.lookups.iter().enumerate() {
            if !plan.outs.contains_key(&lk.key) && !dim_names.contains(&lk.key) {
                return Err(self.unknown_lookup_key(report, i, k, &plan.outs, &dim_names));
            }
        }
        for (resolved, site) in plan.derived.values() {
            for t in &resolved.refs {
                if let TargetKind::Dimension(d) = &t.kind
                    && !dim_names.contains(d)
                {
                    return Err(site
                        .error_near(
                            d,
                            format!("dimension `{d}` has no value in {}", grouping_name(group)),
                        )
                        .into());
                }
            }
        }

        // Aggregate each model by the grouping's dimensions.
        // The block's time dimension keeps its models' rows to the run's period in every
        // grouping: the totals row and subtotals without it count what its rows count.
        let time_dim = match self.time_dimension(report, i, group)? {
            Some(found) => Some(found),
            None => self.time_dimension(report, i, &block.by.0)?,
        };
        let mut parts: Vec<DataFrame> = Vec::new();
        for ((model, shift), aggs) in &plan.base {
            let c: &Compiler = match shift {
                Some(s) => &plan.shifted[s],
                None => self,
            };
            let mut df = c.block_input(report, i, model, Some(&format!("in model `{model}`")))?;
            // A time dimension keeps the rows whose time falls in the run's period.
            let mut time_expr = None;
            if let Some((d, time, grain)) = &time_dim {
                let site = self.block_site(
                    report,
                    i,
                    &join(&join("by", d), "time"),
                    Some(&format!("time dimension `{d}` in model `{model}`")),
                );
                let Some(text) = time.for_model(model) else {
                    return Err(site
                        .error(format!("`time` names no column for model `{model}`"))
                        .into());
                };
                let t = c.row_expr(&site, text, &df)?;
                let keep = c.in_period(&site, &t, df.schema())?;
                df = df.filter(keep).map_err(err)?;
                if matches!(shift, Some(Shift::PreviousPeriod | Shift::PreviousMonth)) {
                    return Err(site
                        .error("this `shift` does not align with a time dimension; use `previous_year`")
                        .into());
                }
                time_expr = Some((d.clone(), t, *grain));
            }
            let mut groups = Vec::new();
            for (d, spec) in group {
                if let Some((td, t, grain)) = &time_expr
                    && td == d
                {
                    let mut start = self.period_start_expr(*grain, t.clone())?;
                    if *shift == Some(Shift::PreviousYear) {
                        // Last year's period is shown beside this year's.
                        start =
                            start + Expr::Literal(ScalarValue::IntervalYearMonth(Some(12)), None);
                    }
                    groups.push(self.within_period(start).alias(d));
                    continue;
                }
                let site = self.block_site(
                    report,
                    i,
                    &join("by", d),
                    Some(&format!("dimension `{d}` in model `{model}`")),
                );
                let text = spec.expr.as_deref().unwrap_or(d);
                groups.push(c.row_expr(&site, text, &df)?.alias(d));
            }
            let aggs = aggs
                .iter()
                .map(|(c, e, _)| (c.clone(), e.clone()))
                .collect();
            parts.push(aggregate(df, groups, aggs).map_err(err)?);
        }
        if let Some((d, _, grain)) = &time_dim
            && dim_names.contains(d)
        {
            let spine = self
                .period_spine(&parts, &dim_names, d, *grain)
                .map_err(err)?;
            parts.push(spine);
        }
        for (d, spec) in group {
            if let Some(all) = &spec.all_values {
                let values = self.dictionary(report, i, d, all)?;
                let spine = self
                    .values_spine(&parts, &dim_names, d, values)
                    .map_err(err)?;
                parts.push(spine);
            }
        }
        let mut df = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            merge(parts, &dim_names).map_err(err)?
        };

        // Empty groups: counts and sums are 0, not null.
        let fills: Vec<&String> = plan
            .base
            .values()
            .flatten()
            .filter(|(_, _, e)| *e == Empty::Zero)
            .map(|(c, _, _)| c)
            .collect();
        if !fills.is_empty() {
            let exprs: Vec<Expr> = df
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    let c = column(f.name());
                    if fills.contains(&f.name()) {
                        datafusion::functions::expr_fn::coalesce(vec![
                            c,
                            Expr::Literal(
                                ScalarValue::new_zero(f.data_type())
                                    .unwrap_or(ScalarValue::Int64(Some(0))),
                                None,
                            ),
                        ])
                        .alias(f.name())
                    } else {
                        c
                    }
                })
                .collect();
            df = df.select(exprs).map_err(err)?;
        }

        // Measures over measures, copies and lookups, in the analysed order: the columns
        // that read none of each other in one projection, a new one where a column reads
        // one still pending, a lookup or a window in a step of its own.
        let mut pending: Vec<(String, Expr)> = Vec::new();
        let flush = |df: DataFrame, pending: &mut Vec<(String, Expr)>| match pending.len() {
            0 => Ok(df),
            _ => with_columns(df, &std::mem::take(pending)),
        };
        for c in &plan.order {
            if let Some(source) = plan.copies.get(c) {
                if pending.iter().any(|(p, _)| p == source) {
                    df = flush(df, &mut pending).map_err(err)?;
                }
                pending.push((c.clone(), column(source)));
                continue;
            }
            if let Some(k) = c.strip_prefix("__lookup") {
                let k: usize = k.parse().expect("lookup steps are numbered");
                df = flush(df, &mut pending).map_err(err)?;
                df = self.lookup(df, report, i, k, &plan.lookup_deps[c])?;
                continue;
            }
            if plan.lookup_deps.contains_key(c) {
                continue; // brought in by its lookup
            }
            let (resolved, site) = &plan.derived[c];
            if resolved
                .refs
                .iter()
                .any(|t| pending.iter().any(|(p, _)| *p == t.column))
            {
                df = flush(df, &mut pending).map_err(err)?;
            }
            let e = self.plan(site, resolved, df.schema())?;
            if !find_aggregate_exprs([&e]).is_empty() {
                return Err(site.error("an aggregate of a measure is not allowed; aggregate rows in a measure of its own").into());
            }
            if datafusion::logical_expr::utils::find_window_exprs([&e]).is_empty() {
                pending.push((c.clone(), e));
            } else {
                df = flush(df, &mut pending).map_err(err)?;
                df = df.with_column(c, e).map_err(err)?;
            }
        }
        df = flush(df, &mut pending).map_err(err)?;

        // Output: dimensions, then measures under their public names.
        let mut select: Vec<Expr> = dim_names.iter().map(|d| column(d)).collect();
        let mut metas = Vec::new();
        if dims {
            let first = plan.from.clone().unwrap_or_else(|| plan.models[0].clone());
            let model = self.catalog.models[&first].clone();
            for (d, spec) in group {
                let site =
                    self.block_site(report, i, &join("by", d), Some(&format!("dimension `{d}`")));
                let text = spec.expr.clone().unwrap_or_else(|| d.clone());
                let inherited = if is_identifier(&text) {
                    model_column_spec(&model, &text)
                } else {
                    None
                };
                metas.push((d.clone(), spec.clone(), inherited, text, site));
            }
        }
        for (name, (out, site, text)) in &plan.outs {
            // Hidden measures are output too (sort may name them); `block_rows` drops them
            // once the rows are sorted.
            let spec = block.measures.get(name).cloned().unwrap_or_default();
            let (col, inherited, shown) = match out {
                Out::Alias(m) => {
                    let mut spec = m.spec.clone();
                    spec.expr = Some(m.text.clone());
                    (
                        measure_column(&m.model, &m.name),
                        Some(spec),
                        format!("{}.{}", m.model, m.name),
                    )
                }
                _ => (block_column(name), None, text.clone()),
            };
            select.push(column(&col).alias(name));
            metas.push((name.clone(), spec, inherited, shown, site.clone()));
        }
        let df = df.select(select).map_err(err)?;
        let columns = self.column_metas(&df, metas, |text, _| text.to_string())?;
        Ok((df, columns))
    }
}

/// How an error names a grouping of a table block that lacks some of its dimensions.
fn grouping_name(group: &[(String, ExprSpec)]) -> String {
    if group.is_empty() {
        return "the totals row, which groups by no dimension".to_string();
    }
    let dims: Vec<String> = group.iter().map(|(d, _)| format!("`{d}`")).collect();
    format!("a subtotal, which groups by {} only", dims.join(", "))
}

/// `frame` with the columns of `like`, in its order: those it lacks as typed nulls.
pub(super) fn align(frame: DataFrame, like: &DataFrame) -> datafusion::error::Result<DataFrame> {
    let have = frame_columns(&frame);
    let select = like
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if have.contains(f.name()) {
                Ok(column(f.name()))
            } else {
                ScalarValue::try_from(f.data_type())
                    .map(|null| Expr::Literal(null, None).alias(f.name()))
            }
        })
        .collect::<datafusion::error::Result<Vec<Expr>>>()?;
    frame.select(select)
}

/// Aggregates `df` by `groups`; measures may wrap aggregates in further arithmetic, which
/// is computed in a projection on top.
pub(super) fn aggregate(
    df: DataFrame,
    groups: Vec<Expr>,
    measures: Vec<(String, Expr)>,
) -> datafusion::error::Result<DataFrame> {
    let group_names: Vec<String> = groups.iter().map(|g| g.schema_name().to_string()).collect();
    let mut aggs: Vec<Expr> = Vec::new();
    let mut post: Vec<Expr> = Vec::new();
    let mut complex = false;
    for (name, e) in measures {
        if matches!(e, Expr::AggregateFunction(_)) {
            aggs.push(e.alias(&name));
            post.push(column(&name));
            continue;
        }
        complex = true;
        let found = find_aggregate_exprs([&e]);
        let mut names = Vec::new();
        for a in &found {
            let inner = format!("__agg{}", aggs.len());
            aggs.push(a.clone().alias(&inner));
            names.push(inner);
        }
        let rewritten = e
            .transform_up(|x| match found.iter().position(|a| a == &x) {
                Some(p) => Ok(Transformed::yes(column(&names[p]))),
                None => Ok(Transformed::no(x)),
            })?
            .data;
        post.push(rewritten.alias(&name));
    }
    let df = df.aggregate(groups, aggs)?;
    if !complex {
        return Ok(df);
    }
    let mut select: Vec<Expr> = group_names.iter().map(|g| column(g)).collect();
    select.extend(post);
    df.select(select)
}

/// Stacks per-model aggregates and folds them by dimension (see the module doc).
pub(super) fn merge(
    parts: Vec<DataFrame>,
    dims: &[String],
) -> datafusion::error::Result<DataFrame> {
    let mut measure_types: Vec<(String, arrow::datatypes::DataType)> = Vec::new();
    for p in &parts {
        for f in p.schema().fields() {
            if !dims.contains(f.name()) {
                measure_types.push((f.name().clone(), f.data_type().clone()));
            }
        }
    }
    let mut stacked: Option<DataFrame> = None;
    for p in parts {
        let own = frame_columns(&p);
        let mut select: Vec<Expr> = dims.iter().map(|d| column(d)).collect();
        for (name, ty) in &measure_types {
            select.push(if own.contains(name) {
                column(name)
            } else {
                Expr::Literal(ScalarValue::try_from(ty)?, None).alias(name)
            });
        }
        let p = p.select(select)?;
        stacked = Some(match stacked {
            None => p,
            Some(s) => s.union(p)?,
        });
    }
    let stacked = stacked.expect("at least two parts");
    let groups = dims.iter().map(|d| column(d)).collect();
    let folds = measure_types
        .iter()
        .map(|(name, _)| max(column(name)).alias(name))
        .collect();
    stacked.aggregate(groups, folds)
}
