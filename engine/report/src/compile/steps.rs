//! The steps after aggregation: lookups by range, summed totals, unpivot, sort and limit,
//! in dependency order.

use super::*;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

impl<'a> Compiler<'a> {
    /// Adds the columns of lookup `k` of block `i` to `df`: the row of the looked-up table
    /// with the highest `at_most` not above `key` (none: nulls).
    pub(super) fn lookup(
        &self,
        df: DataFrame,
        report: &Report,
        i: usize,
        k: usize,
        key: &str,
    ) -> Result<DataFrame, ReportError> {
        use datafusion::functions_window::expr_fn::row_number;
        use datafusion::logical_expr::ExprFunctionExt;
        let lk = &report.spec.blocks[i].lookups[k];
        let path = index("lookups", k);
        let context = format!(
            "report `{}`, block `{}`, lookup in `{}`",
            report.id(),
            report.spec.blocks[i].id,
            lk.from
        );
        let err = |e| df_error(&report.src, &path, &context, e);
        let right = self.source_frame(
            &lk.from,
            &report.src,
            &join(&path, "from"),
            &context,
            &mut Vec::new(),
        )?;
        let right_cols = frame_columns(&right);
        if !right_cols.contains(&lk.at_most) {
            return Err(Diagnostic::at(
                &report.src,
                &join(&path, "at_most"),
                &context,
                format!(
                    "`{}` has no column `{}`{}",
                    lk.from,
                    lk.at_most,
                    did_you_mean(&lk.at_most, right_cols.iter().map(String::as_str))
                ),
            )
            .into());
        }
        let mut select = vec![column(&lk.at_most).alias("__lk_at")];
        for (name, spec) in lk.take.iter() {
            let site = ExprSite {
                src: report.src.clone(),
                path: join(&join(&path, "take"), name),
                context: context.clone(),
            };
            let text = spec.expr.as_deref().unwrap_or(name);
            select.push(
                self.row_expr(&site, text, &right)?
                    .alias(block_column(name)),
            );
        }
        let right = right.select(select).map_err(err)?;
        let rank = row_number()
            .partition_by(vec![column("__lk_row")])
            .order_by(vec![SortExpr::new(column("__lk_at"), false, true)])
            .build()
            .map_err(err)?;
        df.with_column("__lk_row", row_number())
            .and_then(|d| {
                d.join_on(
                    right,
                    JoinType::Left,
                    [column(key).gt_eq(column("__lk_at"))],
                )
            })
            .and_then(|d| d.with_column("__lk_rank", rank))
            .and_then(|d| {
                d.filter(column("__lk_rank").eq(Expr::Literal(ScalarValue::UInt64(Some(1)), None)))
            })
            .and_then(|d| d.drop_columns(&["__lk_row", "__lk_at", "__lk_rank"]))
            .map_err(err)
    }

    /// Measures whose total is the sum of the rows' values (or nothing) instead of the
    /// measure over all rows; `rows` are the block's rows without subtotal rows. When they
    /// are all the rows the block shows (no `limit`, no subtotals) and the summed values
    /// are numbers, a summed measure is a typed null here, summed from the rows once they
    /// are computed (`summed_totals`): summing them in the plan would plan and compute
    /// the rows a second time. Returns the totals and the measures left to sum so.
    pub(super) fn totals_overrides(
        &self,
        block: &crate::spec::BlockSpec,
        totals: DataFrame,
        rows: &DataFrame,
    ) -> datafusion::error::Result<(DataFrame, Vec<String>)> {
        use crate::spec::TotalKind;
        use datafusion::functions_aggregate::expr_fn::sum;
        let kind = |name: &str| block.measures.get(name).and_then(|s| s.total);
        let summed: Vec<&String> = block
            .measures
            .iter()
            .filter(|(_, s)| s.total == Some(TotalKind::Sum) && !s.hidden)
            .map(|(n, _)| n)
            .collect();
        // Any other type is summed by the plan, which refuses what `sum` cannot add.
        let later = block.limit.is_none()
            && block.subtotals.is_empty()
            && summed.iter().all(|n| {
                rows.schema()
                    .field_with_unqualified_name(n)
                    .is_ok_and(|f| summed_as(f.data_type()).is_some())
            });
        let mut totals = totals;
        if !later && !summed.is_empty() {
            let sums = summed
                .iter()
                .map(|n| sum(column(n)).alias(format!("__sum_{n}")))
                .collect();
            let agg = rows.clone().aggregate(vec![], sums)?;
            let plan = LogicalPlanBuilder::from(totals.logical_plan().clone())
                .cross_join(agg.logical_plan().clone())?
                .build()?;
            totals = DataFrame::new(self.state.clone(), plan);
        }
        let select = rows
            .schema()
            .fields()
            .iter()
            .map(|f| match kind(f.name()) {
                Some(TotalKind::Sum) if !later => Ok(datafusion::logical_expr::cast(
                    column(&format!("__sum_{}", f.name())),
                    f.data_type().clone(),
                )
                .alias(f.name())),
                Some(TotalKind::Sum | TotalKind::None) => ScalarValue::try_from(f.data_type())
                    .map(|null| Expr::Literal(null, None).alias(f.name())),
                None => Ok(column(f.name())),
            })
            .collect::<datafusion::error::Result<Vec<Expr>>>()?;
        let summed_later = match later {
            true => summed.into_iter().cloned().collect(),
            false => vec![],
        };
        Ok((totals.select(select)?, summed_later))
    }

    /// Turns each row of measures into one row per listed item: the item's name, then one
    /// value per output column, taken from the measure the column's pattern names.
    pub(super) fn unpivot(
        &self,
        report: &Report,
        i: usize,
        u: &crate::spec::UnpivotSpec,
        rows: DataFrame,
        columns: &[ColumnMeta],
    ) -> Result<(DataFrame, Vec<ColumnMeta>), ReportError> {
        let block = &report.spec.blocks[i];
        let err = |e| {
            df_error(
                &report.src,
                &join(&index("blocks", i), "unpivot"),
                &block.id,
                e,
            )
        };
        let dims: Vec<String> = block.by.names().map(str::to_string).collect();
        let have: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        if u.rows.is_empty() {
            return Err(self
                .block_site(report, i, "unpivot", None)
                .error("`unpivot` needs `rows`")
                .into());
        }
        if u.columns.is_empty() {
            return Err(self
                .block_site(report, i, "unpivot", None)
                .error("`unpivot` needs `columns`: each output column with the measure it takes, `{}` standing for the row's item")
                .into());
        }
        for (k, item) in u.rows.iter().enumerate() {
            for (out, pattern) in &u.columns {
                let source = pattern.replace("{}", item);
                if !have.contains(&source.as_str()) {
                    let site =
                        self.block_site(report, i, &index(&join("unpivot", "rows"), k), None);
                    return Err(site
                        .error(format!(
                            "column `{out}` of `{item}` reads measure `{source}`, which the block does not have{}",
                            did_you_mean(&source, have.iter().copied())
                        ))
                        .into());
                }
            }
        }
        // Each row of measures crossed with the items, each output column the measure of
        // the row's item: the rows are planned and computed once, not once per item.
        const ITEM: &str = "__unpivot_item";
        const NAME: &str = "__unpivot_name";
        let is_item =
            |k: usize| column(ITEM).eq(Expr::Literal(ScalarValue::Int64(Some(k as i64)), None));
        let mut picks: Vec<Expr> = Vec::new();
        for (out, pattern) in &u.columns {
            let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> =
                None;
            for (k, item) in u.rows.iter().enumerate() {
                let source = pattern.replace("{}", item);
                let value = datafusion::logical_expr::cast(
                    column(&source),
                    arrow::datatypes::DataType::Float64,
                );
                case = Some(match case {
                    None => datafusion::logical_expr::when(is_item(k), value),
                    Some(mut b) => b.when(is_item(k), value),
                });
            }
            if let Some(case) = case {
                picks.push(case.end().map_err(err)?.alias(out));
            }
        }
        let items: Vec<Vec<Expr>> = u
            .rows
            .iter()
            .enumerate()
            .map(|(k, item)| {
                vec![
                    Expr::Literal(ScalarValue::Utf8(Some(item.clone())), None),
                    Expr::Literal(ScalarValue::Int64(Some(k as i64)), None),
                ]
            })
            .collect();
        let mut select: Vec<Expr> = dims.iter().map(|d| column(d)).collect();
        select.push(column(NAME).alias(&u.name));
        select.extend(picks);
        select.push(column(ITEM));
        let mut kept: Vec<Expr> = dims.iter().map(|d| column(d)).collect();
        kept.push(column(&u.name));
        kept.extend(u.columns.keys().map(|out| column(out)));
        // The order of `rows:`, then the block's dimensions.
        let order: Vec<SortExpr> = std::iter::once(ITEM)
            .chain(dims.iter().map(String::as_str))
            .map(|c| SortExpr::new(column(c), true, false))
            .collect();
        let (state, rows) = rows.into_parts();
        let df = LogicalPlanBuilder::values(items)
            .and_then(|v| {
                v.project(vec![
                    column("column1").alias(NAME),
                    column("column2").alias(ITEM),
                ])
            })
            .and_then(|v| v.build())
            .and_then(|items| LogicalPlanBuilder::from(rows).cross_join(items))
            .and_then(|b| b.project(select))
            .and_then(|b| b.sort(order))
            .and_then(|b| b.project(kept))
            .and_then(|b| b.build())
            .map_err(err)?;
        let df = DataFrame::new(state, df);
        if let Some(k) = u.labels.keys().find(|k| !u.columns.contains_key(*k)) {
            return Err(self
                .block_site(report, i, &format!("unpivot.labels.{k}"), None)
                .error(format!(
                    "`{k}` is not an output column of `unpivot.columns`{}",
                    did_you_mean(k, u.columns.keys().map(String::as_str))
                ))
                .into());
        }
        let mut metas: Vec<ColumnMeta> = dims
            .iter()
            .filter_map(|d| columns.iter().find(|c| &c.name == d).cloned())
            .collect();
        metas.push(ColumnMeta {
            name: u.name.clone(),
            label: u.label.clone().unwrap_or_else(|| u.name.clone()),
            ty: crate::spec::ValueType::Text,
            definition: format!("one of: {}", u.rows.join(", ")),
            description: None,
            dimension: true,
            lower_is_better: false,
            // Each row names a measure of the block: pages show its label.
            value_labels: u
                .rows
                .iter()
                .filter_map(|item| {
                    let c = columns.iter().find(|c| &c.name == item)?;
                    Some((item.clone(), c.label.clone()))
                })
                .collect(),
        });
        // One column holds several metrics (money, counts…): plain numbers.
        for (out, pattern) in &u.columns {
            metas.push(ColumnMeta {
                name: out.clone(),
                label: u.labels.get(out).cloned().unwrap_or_else(|| out.clone()),
                ty: crate::spec::ValueType::Number,
                definition: format!("the measure `{pattern}` of each row's item"),
                description: None,
                dimension: false,
                lower_is_better: false,
                value_labels: vec![],
            });
        }
        Ok((df, metas))
    }

    pub(super) fn sort_and_limit(
        &self,
        df: DataFrame,
        report: &Report,
        i: usize,
    ) -> Result<DataFrame, ReportError> {
        let block = &report.spec.blocks[i];
        let cols = frame_columns(&df);
        let mut sort = Vec::new();
        for (k, item) in block.sort.iter().enumerate() {
            let site = self.block_site(report, i, &index("sort", k), None);
            let (name, asc, nulls_first) =
                parse_sort(item).map_err(|m| ReportError::from(site.error(m)))?;
            if !cols.contains(&name) {
                return Err(site
                    .error(format!(
                        "sort by unknown column `{name}`{}; sort names an output column",
                        did_you_mean(&name, cols.iter().map(String::as_str))
                    ))
                    .into());
            }
            sort.push(SortExpr::new(column(&name), asc, nulls_first));
        }
        // Ties are broken by the dimensions (a list's columns), so that rows come out in
        // the same order whatever the input's order or partitioning.
        let sorted: Vec<String> = block
            .sort
            .iter()
            .filter_map(|item| parse_sort(item).ok().map(|(n, _, _)| n))
            .collect();
        let tie_breakers: Vec<String> = if block.columns.is_empty() {
            block.by.names().map(str::to_string).collect()
        } else {
            cols.clone()
        };
        for name in tie_breakers {
            if cols.contains(&name) && !sorted.contains(&name) {
                sort.push(SortExpr::new(column(&name), true, false));
            }
        }
        let mut df = df;
        if !sort.is_empty() {
            df = df
                .sort(sort)
                .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        }
        if let Some(limit) = &block.limit {
            let site = self.block_site(report, i, "limit", None);
            let n = match limit {
                Limit::Fixed(n) => *n as usize,
                Limit::Setting(s) => match self.bound(&site, s)? {
                    ScalarValue::Int64(Some(n)) if *n >= 0 => *n as usize,
                    _ => {
                        return Err(site
                            .error(format!("limit `${s}` must be a non-negative int setting"))
                            .into());
                    }
                },
            };
            df = df
                .limit(0, Some(n))
                .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        }
        Ok(df)
    }
}

/// "name [asc|desc] [nulls first|nulls last]" → (name, ascending, nulls_first).
pub(super) fn parse_sort(item: &str) -> Result<(String, bool, bool), String> {
    let words: Vec<String> = item.split_whitespace().map(str::to_lowercase).collect();
    let bad =
        || format!("sort item `{item}`: expected `column [asc|desc] [nulls first|nulls last]`");
    let name = words.first().ok_or_else(bad)?.clone();
    let mut asc = true;
    let mut nulls_first = false;
    let mut rest = &words[1..];
    if let Some(w) = rest.first()
        && (w == "asc" || w == "desc")
    {
        asc = w == "asc";
        rest = &rest[1..];
    }
    match rest {
        [] => {}
        [n, f] if n == "nulls" && f == "first" => nulls_first = true,
        [n, l] if n == "nulls" && l == "last" => nulls_first = false,
        _ => return Err(bad()),
    }
    Ok((name, asc, nulls_first))
}

/// Orders `nodes` so that each comes after its dependencies; Err(cycle) on a cycle.
pub(super) fn topo_order(
    nodes: Vec<String>,
    deps: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<String>, Vec<String>> {
    fn visit(
        n: &str,
        deps: &dyn Fn(&str) -> Vec<String>,
        done: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        if done.iter().any(|d| d == n) {
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| p == n) {
            let mut cycle = path[start..].to_vec();
            cycle.push(n.to_string());
            return Err(cycle);
        }
        path.push(n.to_string());
        for d in deps(n) {
            visit(&d, deps, done, path)?;
        }
        path.pop();
        done.push(n.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for n in &nodes {
        visit(n, &deps, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// `totals` (a block's totals row) with each column of `summed` the sum of that column
/// over `rows`, in the column's type; null where no row has a value. The sums of
/// `total: sum` that `Compiler::totals_overrides` leaves to the computed rows.
pub(crate) fn summed_totals(
    totals: RecordBatch,
    rows: &[RecordBatch],
    summed: &[String],
) -> Result<RecordBatch, ArrowError> {
    use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, UInt64Type};
    let schema = totals.schema();
    let mut columns = totals.columns().to_vec();
    let n = totals.num_rows();
    for name in summed {
        let k = schema.index_of(name)?;
        let ty = schema.field(k).data_type();
        let parts = rows
            .iter()
            .map(|b| {
                b.column_by_name(name).cloned().ok_or_else(|| {
                    ArrowError::SchemaError(format!("the rows have no column `{name}` to sum"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sum = match summed_as(ty) {
            Some(wide @ DataType::Decimal128(..)) => sum_as::<Decimal128Type>(&parts, &wide, n)?,
            Some(wide @ DataType::Float64) => sum_as::<Float64Type>(&parts, &wide, n)?,
            Some(wide @ DataType::Int64) => sum_as::<Int64Type>(&parts, &wide, n)?,
            Some(wide @ DataType::UInt64) => sum_as::<UInt64Type>(&parts, &wide, n)?,
            _ => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "a totals row cannot sum `{name}` of type {ty}"
                )));
            }
        };
        let options = arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        columns[k] = arrow::compute::cast_with_options(&sum, ty, &options)?;
    }
    RecordBatch::try_new(schema, columns)
}

/// The type a column of type `ty` is summed in by `summed_totals`, as DataFusion's `sum`
/// sums: decimals at full precision, integers in 64 bits, floats as doubles (the sum is
/// then cast back, an overflow an error). None: not summed there.
fn summed_as(ty: &arrow::datatypes::DataType) -> Option<arrow::datatypes::DataType> {
    use arrow::datatypes::DataType;
    match ty {
        DataType::Decimal128(_, scale) => Some(DataType::Decimal128(38, *scale)),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(DataType::Float64),
        t if t.is_signed_integer() => Some(DataType::Int64),
        t if t.is_unsigned_integer() => Some(DataType::UInt64),
        _ => None,
    }
}

/// The sum of `parts` cast to `wide` (`T`'s type), repeated `n` times.
fn sum_as<T: arrow::datatypes::ArrowNumericType>(
    parts: &[arrow::array::ArrayRef],
    wide: &arrow::datatypes::DataType,
    n: usize,
) -> Result<arrow::array::ArrayRef, ArrowError> {
    use arrow::array::{AsArray, PrimitiveArray};
    use arrow::datatypes::ArrowNativeTypeOp;
    let mut total: Option<T::Native> = None;
    for part in parts {
        let part = arrow::compute::cast(part, wide)?;
        if let Some(s) = arrow::compute::sum_checked(part.as_primitive::<T>())? {
            total = Some(match total {
                None => s,
                Some(t) => t.add_checked(s)?,
            });
        }
    }
    let sums: PrimitiveArray<T> = std::iter::repeat_n(total, n).collect();
    Ok(Arc::new(sums.with_data_type(wide.clone())))
}
