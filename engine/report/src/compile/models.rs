//! Models: a model's rows (source, joins, derived columns, filters, grouping), narrowed
//! to what a run reads, and its measures.

use super::*;
use crate::catalog::Input;

/// How the columns a join adds for its keys begin (`{JOIN_SCRATCH}{join}_ours{key}`, and
/// `_theirs`): left out of the model's columns.
const JOIN_SCRATCH: &str = "__join";

impl<'a> Compiler<'a> {
    /// For a model narrowed by the run (`narrow`): the columns it must still compute, and
    /// the joins (by index) it leaves out — those that bring no column the run reads,
    /// directly or through derived columns, the filters the run sets (`filtered`) or the
    /// keys of the joins kept, and match at most one row (`one_row_per_key`), so that
    /// leaving them out changes no row.
    pub(super) fn narrowing(
        &self,
        model: &Model,
        filtered: bool,
        stack: &[String],
    ) -> Option<(HashSet<String>, HashSet<usize>)> {
        let name = &model.spec.model;
        let mut required = if filtered {
            self.needed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned()?
        } else {
            self.inner_schema(name)?.0
        };
        let spec = &model.spec;
        if filtered {
            // A filter the run does not set reads nothing: its column (the stage visit's
            // employee, found through the lead and the deal) is not computed for it.
            required.extend(
                spec.filters
                    .iter()
                    .filter(|(f, _)| !self.filter_values(f).is_empty())
                    .map(|(_, c)| c.clone()),
            );
        }
        required.extend(spec.key.iter().cloned());
        let kept = |j: &crate::spec::JoinSpec, required: &HashSet<String>| {
            j.take.iter().any(|(name, _)| required.contains(name))
                || !self.one_row_per_key(j, stack)
        };
        loop {
            let before = required.len();
            let mut more: Vec<String> = Vec::new();
            for (c, column) in spec.columns.iter() {
                if required.contains(c) {
                    more.extend(identifiers(
                        &self.state,
                        column.expr.as_deref().unwrap_or(c),
                    ));
                }
            }
            for j in spec.joins.iter().filter(|j| kept(j, &required)) {
                for ours in j.on.keys() {
                    more.extend(identifiers(&self.state, ours));
                }
            }
            required.extend(more);
            if required.len() == before {
                break;
            }
        }
        let left_out = spec
            .joins
            .iter()
            .enumerate()
            .filter(|(_, j)| !kept(j, &required))
            .map(|(i, _)| i)
            .collect();
        Some((required, left_out))
    }

    /// True when the join matches at most one row of its right side: the join's keys,
    /// with the columns its `where` fixes to a value, cover the groups of a `group_by`
    /// model, a model's declared `key` or the key of a canonical table.
    pub(super) fn one_row_per_key(&self, j: &crate::spec::JoinSpec, stack: &[String]) -> bool {
        let key: Vec<&str> = match self.catalog.input(&j.from, stack) {
            Input::Model(name) => {
                let m = &self.catalog.models[name];
                match &m.spec.group_by {
                    Some(groups) => groups.iter().map(|(g, _)| g.as_str()).collect(),
                    None if !m.spec.key.is_empty() => {
                        m.spec.key.iter().map(String::as_str).collect()
                    }
                    None => return false,
                }
            }
            Input::Table(t) if !t.key.is_empty() => t.key.to_vec(),
            _ => return false,
        };
        let mut matched: HashSet<String> = j.on.values().cloned().collect();
        if let Some(w) = &j.filter {
            matched.extend(fixed_columns(&self.state, w));
        }
        key.iter().all(|k| matched.contains(*k))
    }

    /// A table or a model, by name. A model may share its name with the table it refines
    /// (model `deals` reads table `deals`): inside that model the name means the table,
    /// everywhere else the model.
    pub(super) fn source_frame(
        &self,
        name: &str,
        src: &DefinitionFile,
        path: &str,
        context: &str,
        stack: &mut Vec<String>,
    ) -> Result<DataFrame, ReportError> {
        if let Some(setting) = name.strip_prefix('$') {
            return self.setting_frame(setting, src, path, context);
        }
        let name = match self.catalog.input(name, stack) {
            Input::Model(model) => return self.model_frame(model, false, stack),
            Input::Table(t) => t.name,
            Input::Unknown(name) => {
                let known = svodka_schema::TABLES
                    .iter()
                    .map(|t| t.name)
                    .chain(self.catalog.models.keys().map(String::as_str));
                return Err(Diagnostic::at(
                    src,
                    path,
                    context,
                    format!(
                        "unknown table or model `{name}`{}",
                        did_you_mean(name, known)
                    ),
                )
                .into());
            }
        };
        let provider = self.source.table(name)?;
        let plan = LogicalPlanBuilder::scan(name, provider_as_source(provider), None)
            .and_then(|b| b.build())
            .map_err(|e| df_error(src, path, context, e))?;
        Ok(DataFrame::new(self.state.clone(), plan))
    }

    /// A structured setting (map, list, table) as a table.
    pub(super) fn setting_frame(
        &self,
        name: &str,
        src: &DefinitionFile,
        path: &str,
        context: &str,
    ) -> Result<DataFrame, ReportError> {
        let Some(rows) = self.bindings.1.get(name) else {
            let known = self.bindings.1.keys().map(String::as_str);
            return Err(Diagnostic::at(
                src,
                path,
                context,
                format!(
                    "`${name}` is not a map, list or table setting{}",
                    did_you_mean(name, known)
                ),
            )
            .into());
        };
        let fields: Vec<arrow::datatypes::Field> = rows
            .columns
            .iter()
            .map(|(c, t)| arrow::datatypes::Field::new(c, crate::settings::arrow_type(*t), true))
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        // The rows are literals in the plan (not a table in memory), so the plan can be
        // shipped as it is; no rows is an empty table of the same columns.
        let build = || -> datafusion::error::Result<DataFrame> {
            let types: Vec<_> = rows
                .columns
                .iter()
                .map(|(_, t)| crate::settings::arrow_type(*t))
                .collect();
            let values: Vec<Vec<Expr>> = rows
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .zip(&types)
                        .map(|(cell, ty)| {
                            Ok(datafusion::prelude::lit(
                                crate::settings::scalar(cell)
                                    .expect("cells are scalars")
                                    .cast_to(ty)?,
                            ))
                        })
                        .collect::<datafusion::error::Result<Vec<Expr>>>()
                })
                .collect::<datafusion::error::Result<_>>()?;
            let plan = if values.is_empty() {
                let table = datafusion::datasource::empty::EmptyTable::new(schema.clone());
                LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?
                    .build()?
            } else {
                let df_schema = Arc::new(DFSchema::try_from(schema.clone())?);
                let values = LogicalPlanBuilder::values_with_schema(values, &df_schema)?;
                // VALUES names its columns column1, column2, …: give them the setting's.
                let named: Vec<Expr> = values
                    .schema()
                    .columns()
                    .into_iter()
                    .zip(schema.fields())
                    .map(|(c, f)| Expr::Column(c).alias(f.name()))
                    .collect();
                values.project(named)?.alias(name)?.build()?
            };
            Ok(DataFrame::new(self.state.clone(), plan))
        };
        build().map_err(|e| df_error(src, path, context, e))
    }

    /// The rows of a model: source, joins, derived columns, report filters (when
    /// `filtered`, i.e. read by a block directly rather than through another model), and
    /// grouping. Columns come out unqualified, under the model's name.
    pub fn model_frame(
        &self,
        name: &str,
        filtered: bool,
        stack: &mut Vec<String>,
    ) -> Result<DataFrame, ReportError> {
        let key = (name.to_string(), filtered);
        if let Some(df) = self
            .frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(df.clone());
        }
        let model = self.catalog.models[name].clone();
        let src = &model.src;
        let context = format!("model `{name}`");
        if stack.iter().any(|m| m == name) {
            let mut cycle = stack.clone();
            cycle.push(name.to_string());
            return Err(Diagnostic::at(
                src,
                "from",
                &context,
                format!(
                    "models refer to each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            )
            .into());
        }
        stack.push(name.to_string());
        let site = |path: &str, what: String| ExprSite {
            src: src.clone(),
            path: path.to_string(),
            context: what,
        };
        let mut df = self.source_frame(&model.spec.from, src, "from", &context, stack)?;
        if let Some(w) = &model.spec.filter {
            df = self.filter(df, &site("where", context.clone()), w)?;
        }
        let grouped = model.spec.group_by.is_some();
        let narrowing = (!grouped)
            .then(|| self.narrowing(&model, filtered, stack))
            .flatten();
        for (i, j) in model.spec.joins.iter().enumerate() {
            if !narrowing.as_ref().is_some_and(|(_, out)| out.contains(&i)) {
                df = self.join(df, &model, i, j, stack)?;
            }
        }
        if !grouped {
            df = self.derived_columns(df, &model, narrowing.as_ref().map(|(r, _)| r))?;
        }
        if filtered {
            df = self.apply_filters(df, &model, narrowing.is_some())?;
        }
        if let Some(group_by) = &model.spec.group_by {
            let mut groups = Vec::new();
            for (g, spec) in group_by.iter() {
                let text = spec.expr.as_deref().unwrap_or(g);
                let e = self.row_expr(
                    &site(&join("group_by", g), format!("{context}, group `{g}`")),
                    text,
                    &df,
                )?;
                groups.push(e.alias(g));
            }
            let mut aggs = Vec::new();
            for (c, spec) in model.spec.columns.iter() {
                let path = join("columns", c);
                let s = site(&path, format!("{context}, column `{c}`"));
                let text = spec.expr.as_deref().unwrap_or(c);
                let e = self.expr_over(&s, text, &df, true)?;
                if find_aggregate_exprs([&e]).is_empty() {
                    return Err(s
                        .error("in a model with `group_by`, every column is an aggregate (count, sum, max …)")
                        .into());
                }
                aggs.push((c.clone(), e));
            }
            df = aggregate(df, groups, aggs).map_err(|e| df_error(src, "group_by", &context, e))?;
        }
        // One flat namespace under the model's name, whatever the joins left qualified,
        // without the joins' keys.
        let flat: Vec<Expr> = df
            .schema()
            .iter()
            .filter(|(_, f)| !f.name().starts_with(JOIN_SCRATCH))
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())).alias(f.name()))
            .collect();
        df = df
            .select(flat)
            .and_then(|d| d.alias(name))
            .map_err(|e| df_error(src, "model", &context, e))?;
        if grouped && !model.spec.key.is_empty() {
            return Err(site("key", context.clone())
                .error("a model with `group_by` has its groups as key; leave `key` out")
                .into());
        }
        let columns = frame_columns(&df);
        if let Some(k) = model.spec.key.iter().find(|k| !columns.contains(k)) {
            return Err(site("key", context.clone())
                .error(format!(
                    "key column `{k}` is not a column of the model{}",
                    did_you_mean(k, columns.iter().map(String::as_str))
                ))
                .into());
        }
        if !filtered && let Some((_, schema)) = self.inner_schema(name) {
            df = unread_as_nulls(df, name, &schema)
                .map_err(|e| df_error(src, "model", &context, e))?;
        }
        stack.pop();
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, df.clone());
        Ok(df)
    }

    /// The columns other models read of `model` and its whole schema, once known.
    fn inner_schema(
        &self,
        model: &str,
    ) -> Option<(HashSet<String>, datafusion::common::DFSchemaRef)> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
            .cloned()
    }

    pub(super) fn join(
        &self,
        df: DataFrame,
        model: &Model,
        i: usize,
        j: &crate::spec::JoinSpec,
        stack: &mut Vec<String>,
    ) -> Result<DataFrame, ReportError> {
        let src = &model.src;
        let path = index("joins", i);
        let context = format!("model `{}`, join `{}`", model.spec.model, j.from);
        let site = |p: &str| ExprSite {
            src: src.clone(),
            path: p.to_string(),
            context: context.clone(),
        };
        let mut right = self.source_frame(&j.from, src, &join(&path, "from"), &context, stack)?;
        if let Some(w) = &j.filter {
            right = self.filter(right, &site(&join(&path, "where")), w)?;
        }
        let left_cols = frame_columns(&df);
        let right_cols = frame_columns(&right);
        let mut select = Vec::new();
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        if j.on.is_empty() {
            return Err(site(&path)
                .error("a join needs `on: {our_column: their_column}`")
                .into());
        }
        // Our side of a key is a column or an expression over the model's columns so far.
        let mut df = df;
        for (k, (ours, theirs)) in j.on.iter().enumerate() {
            let on_path = join(&join(&path, "on"), ours);
            let left_key = if left_cols.contains(ours) {
                ours.clone()
            } else {
                let e = self.row_expr(&site(&on_path), ours, &df)?;
                let name = format!("{JOIN_SCRATCH}{i}_ours{k}");
                df = df
                    .with_column(&name, e)
                    .map_err(|e| df_error(src, &on_path, &context, e))?;
                name
            };
            if !right_cols.contains(theirs) {
                return Err(site(&on_path)
                    .error(format!(
                        "`{}` has no column `{theirs}`{}",
                        j.from,
                        did_you_mean(theirs, right_cols.iter().map(String::as_str))
                    ))
                    .into());
            }
            let key = format!("{JOIN_SCRATCH}{i}_theirs{k}");
            select.push(column(theirs).alias(&key));
            left_keys.push(left_key);
            right_keys.push(key);
        }
        for (name, spec) in j.take.iter() {
            let take_path = join(&join(&path, "take"), name);
            if left_cols.contains(name) {
                return Err(site(&take_path)
                    .error(format!(
                        "the model already has a column `{name}`; take it under another name"
                    ))
                    .into());
            }
            let text = spec.expr.as_deref().unwrap_or(name);
            let e = self.row_expr(&site(&take_path), text, &right)?;
            select.push(e.alias(name));
        }
        let right = right
            .select(select)
            .map_err(|e| df_error(src, &path, &context, e))?;
        let lk: Vec<&str> = left_keys.iter().map(String::as_str).collect();
        let rk: Vec<&str> = right_keys.iter().map(String::as_str).collect();
        // The keys stay until the model's last projection leaves them out: one
        // projection per join to drop them costs more to plan than the join itself.
        df.join(right, JoinType::Left, &lk, &rk, None)
            .map_err(|e| df_error(src, &path, &context, e))
    }

    /// Row-level derived columns, each after the ones it uses; a cycle is an error.
    /// With `only` (a narrowed model), just those columns: the others may read joins left
    /// out.
    pub(super) fn derived_columns(
        &self,
        mut df: DataFrame,
        model: &Model,
        only: Option<&HashSet<String>>,
    ) -> Result<DataFrame, ReportError> {
        let src = &model.src;
        let existing = frame_columns(&df);
        let mut scope = column_scope(&existing);
        let wanted = |name: &String| only.is_none_or(|o| o.contains(name));
        let derived: Vec<(&String, &ExprSpec)> = model
            .spec
            .columns
            .iter()
            .filter(|(n, s)| s.expr.is_some() && wanted(n))
            .map(|(n, s)| (n, s))
            .collect();
        for (name, spec) in model.spec.columns.iter().filter(|(n, _)| wanted(n)) {
            let path = join("columns", name);
            // A problem with the column itself points at its key.
            let at_key = |message: String| -> ReportError {
                Diagnostic {
                    pos: src.key_pos(&path),
                    ..Diagnostic::at(src, &path, format!("model `{}`", model.spec.model), message)
                }
                .into()
            };
            if spec.expr.is_none() && !existing.contains(name) {
                return Err(at_key(format!(
                    "`{name}` has no `expr` and is not a column of `{}`{}",
                    model.spec.from,
                    did_you_mean(name, existing.iter().map(String::as_str))
                )));
            }
            if spec.expr.is_some() && existing.contains(name) && !spec.replace {
                return Err(at_key(format!(
                    "`{name}` is already a column of the source or a join; give the derived column another name, or say `replace: true`"
                )));
            }
        }
        for (name, _) in &derived {
            scope.add_columns([name.as_str()]);
        }
        let mut parsed: IndexMap<String, (ExprSite, Resolved)> = IndexMap::new();
        for (name, spec) in &derived {
            let site = ExprSite {
                src: src.clone(),
                path: join("columns", name),
                context: format!("model `{}`, column `{name}`", model.spec.model),
            };
            let r = self.resolve(&site, spec.expr.as_deref().unwrap_or_default(), &scope)?;
            parsed.insert((*name).clone(), (site, r));
        }
        // A column that replaces a source column reads the source's value under its name.
        let deps = |n: &str| -> Vec<String> {
            parsed[n]
                .1
                .refs
                .iter()
                .map(|t| t.column.clone())
                .filter(|c| parsed.contains_key(c) && !(c == n && existing.contains(c)))
                .collect()
        };
        let order = topo_order(parsed.keys().cloned().collect(), deps).map_err(|cycle| {
            let (site, _) = &parsed[&cycle[0]];
            ReportError::from(site.error(format!(
                "columns refer to each other in a cycle: {}",
                cycle.join(" → ")
            )))
        })?;
        // Columns that read none of each other go in one projection: a projection per
        // column rebuilds the plan's schema once per column (quadratic in the columns).
        let mut pending: Vec<(String, Expr)> = Vec::new();
        for name in order {
            let (site, resolved) = &parsed[&name];
            let deps = deps(&name);
            if pending.iter().any(|(p, _)| deps.contains(p)) {
                df = self.add_columns(df, std::mem::take(&mut pending), &parsed)?;
            }
            let e = self.plan(site, resolved, df.schema())?;
            if datafusion::logical_expr::utils::find_window_exprs([&e]).is_empty() {
                pending.push((name, e));
            } else {
                // A window function gets a plan step of its own (`with_column` makes it).
                df = self.add_columns(df, std::mem::take(&mut pending), &parsed)?;
                df = self.add_columns(df, vec![(name, e)], &parsed)?;
            }
        }
        self.add_columns(df, pending, &parsed)
    }

    /// `df` with `columns` (name, expression over `df`) added, or in place of its columns
    /// of those names; each named by its site in `parsed` when it fails.
    fn add_columns(
        &self,
        df: DataFrame,
        columns: Vec<(String, Expr)>,
        parsed: &IndexMap<String, (ExprSite, Resolved)>,
    ) -> Result<DataFrame, ReportError> {
        let one = |df: DataFrame, name: &str, e: Expr| {
            let site = &parsed[name].0;
            df.with_column(name, e)
                .map_err(|e| df_error(&site.src, &site.path, &site.context, e))
        };
        if columns.len() <= 1 {
            return match columns.into_iter().next() {
                Some((name, e)) => one(df, &name, e),
                None => Ok(df),
            };
        }
        match with_columns(df.clone(), &columns) {
            Ok(df) => Ok(df),
            // One by one, to name the column at fault.
            Err(_) => columns
                .into_iter()
                .try_fold(df, |df, (name, e)| one(df, &name, e)),
        }
    }

    /// `df` (model `model`'s rows) with the report filters the run sets applied. A
    /// `narrowed` frame lacks the columns of the filters the run does not set.
    pub(super) fn apply_filters(
        &self,
        mut df: DataFrame,
        model: &Model,
        narrowed: bool,
    ) -> Result<DataFrame, ReportError> {
        let cols = frame_columns(&df);
        for (filter, col_name) in &model.spec.filters {
            let path = join("filters", filter);
            let values = self.filter_values(filter);
            if !cols.contains(col_name) {
                if narrowed && values.is_empty() {
                    continue;
                }
                return Err(Diagnostic::at(
                    &model.src,
                    &path,
                    format!("model `{}`", model.spec.model),
                    format!(
                        "filter `{filter}` names unknown column `{col_name}`{}",
                        did_you_mean(col_name, cols.iter().map(String::as_str))
                    ),
                )
                .into());
            }
            if values.is_empty() {
                continue;
            }
            let list = values
                .iter()
                .map(|v| Expr::Literal(v.clone(), None))
                .collect();
            df = df
                .filter(column(col_name).in_list(list, false))
                .map_err(|e| df_error(&model.src, &path, &model.spec.model, e))?;
        }
        Ok(df)
    }

    /// The values the run filters `filter` by; none when it does not filter by it.
    fn filter_values(&self, filter: &str) -> &[ScalarValue] {
        self.filters
            .iter()
            .find(|(f, _)| f == filter)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    }

    /// The measures of a model, parsed and classified (once per compiler).
    pub(super) fn model_measures(
        &self,
        name: &str,
    ) -> Result<Arc<IndexMap<String, Measure>>, ReportError> {
        if let Some(m) = self
            .measures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(m.clone());
        }
        let model = self.catalog.models[name].clone();
        let df = self.model_frame(name, true, &mut Vec::new())?;
        let cols = frame_columns(&df);
        let mut scope = column_scope(&cols);
        for (m, _) in model.spec.measures.iter() {
            if cols.contains(m) {
                let path = join("measures", m);
                return Err(Diagnostic {
                    pos: model.src.key_pos(&path),
                    ..Diagnostic::at(
                        &model.src,
                        &path,
                        format!("model `{name}`"),
                        format!("measure `{m}` has the name of a column; measures and columns share one namespace"),
                    )
                }
                .into());
            }
            scope.add(
                None,
                m,
                Target {
                    column: measure_column(name, m),
                    kind: TargetKind::Measure {
                        model: name.to_string(),
                        name: m.clone(),
                    },
                },
            );
        }
        let mut out = IndexMap::new();
        for (m, spec) in model.spec.measures.iter() {
            let site = ExprSite {
                src: model.src.clone(),
                path: join("measures", m),
                context: format!("model `{name}`, measure `{m}`"),
            };
            let Some(text) = spec.expr.clone() else {
                return Err(site.error("a measure needs an `expr`").into());
            };
            let resolved = self.resolve(&site, &text, &scope)?;
            let uses_measures = resolved
                .refs
                .iter()
                .any(|t| matches!(t.kind, TargetKind::Measure { .. }));
            let kind = if uses_measures {
                if let Some(c) = resolved.refs.iter().find(|t| t.kind == TargetKind::Column) {
                    return Err(site
                        .error_near(
                            &c.column,
                            format!(
                                "column `{}` appears in a measure that combines other measures; \
                                 wrap it in an aggregate in a measure of its own",
                                c.column
                            ),
                        )
                        .into());
                }
                MeasureKind::Derived {
                    resolved: Box::new(resolved),
                    site: site.clone(),
                }
            } else {
                let (expr, empty) = self.aggregate_measure(&site, &resolved, &df, spec)?;
                MeasureKind::Base { expr, empty }
            };
            out.insert(
                m.clone(),
                Measure {
                    model: name.to_string(),
                    name: m.clone(),
                    spec: spec.clone(),
                    text,
                    kind,
                },
            );
        }
        let out = Arc::new(out);
        self.measures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), out.clone());
        Ok(out)
    }

    /// Builds a model's rows and parses its measures: the checks that need no report.
    pub fn check_model(&self, name: &str) -> Result<(), ReportError> {
        self.model_frame(name, true, &mut Vec::new())?;
        self.model_measures(name)?;
        Ok(())
    }
}

/// The declaration of a model's column (derived, taken by a join, or a group key).
pub(super) fn model_column_spec(model: &Model, name: &str) -> Option<ExprSpec> {
    if let Some((_, s)) = model.spec.columns.iter().find(|(n, _)| n == name) {
        return Some(s.clone());
    }
    if let Some((_, s)) = model
        .spec
        .group_by
        .iter()
        .flat_map(|g| g.iter())
        .find(|(n, _)| n == name)
    {
        return Some(s.clone());
    }
    // A join's column is shown with the table or model it comes from.
    model.spec.joins.iter().find_map(|j| {
        j.take
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, s)| ExprSpec {
                expr: Some(format!("{}.{}", j.from, s.expr.as_deref().unwrap_or(n))),
                ..s.clone()
            })
    })
}

/// `count` and `sum` give 0 for an empty group; everything else gives null.
pub(super) fn default_empty(expr: &Expr) -> Empty {
    let mut e = expr;
    while let Expr::Alias(a) = e {
        e = &a.expr;
    }
    match e {
        Expr::AggregateFunction(f) if matches!(f.func.name(), "count" | "sum") => Empty::Zero,
        _ => Empty::Null,
    }
}

/// `df` (model `model`'s rows, or some of its columns) with every column of `schema` (the
/// model's whole), those `df` lacks as typed nulls: the plans over a model name every
/// column a join takes, though a run may read only some. Nothing reads the nulls, so the
/// optimizer drops them from every plan.
pub(crate) fn unread_as_nulls(
    df: DataFrame,
    model: &str,
    schema: &DFSchema,
) -> datafusion::error::Result<DataFrame> {
    let columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            if df.schema().has_column_with_unqualified_name(f.name()) {
                Ok(Expr::Column(Column::new(Some(model), f.name())))
            } else {
                let null = ScalarValue::try_from(f.data_type())?;
                Ok(datafusion::prelude::lit(null).alias(f.name()))
            }
        })
        .collect::<datafusion::error::Result<_>>()?;
    df.select(columns)?.alias(model)
}
