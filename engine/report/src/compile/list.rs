//! List blocks (row-level columns of one model) and the output columns' metadata.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn list_block(
        &self,
        report: &Report,
        i: usize,
    ) -> Result<(DataFrame, Vec<ColumnMeta>), ReportError> {
        let block = &report.spec.blocks[i];
        let from = block.from.as_deref().unwrap_or_default();
        self.known_model(report, i, from)?;
        let model = self.catalog.models[from].clone();
        let df = self.block_input(report, i, from, None)?;
        let mut select = Vec::new();
        let mut metas = Vec::new();
        for (name, spec) in block.columns.iter() {
            let site = self.block_site(
                report,
                i,
                &join("columns", name),
                Some(&format!("column `{name}`")),
            );
            let text = spec.expr.as_deref().unwrap_or(name);
            let e = self.row_expr(&site, text, &df)?;
            select.push(e.alias(name));
            let inherited = if is_identifier(text) {
                model_column_spec(&model, text)
            } else {
                None
            };
            metas.push((
                name.clone(),
                spec.clone(),
                inherited,
                text.to_string(),
                site,
            ));
        }
        let df = df
            .select(select)
            .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        let columns = self.column_metas(&df, metas, |text, inherited| match inherited {
            Some(_) => format!("{from}.{text}"),
            None => format!("{text} (over {from})"),
        })?;
        let df = self.sort_and_limit(df, report, i)?;
        let hidden: Vec<&str> = block
            .columns
            .iter()
            .filter(|(_, spec)| spec.hidden)
            .map(|(name, _)| name.as_str())
            .collect();
        let (df, columns) = without(df, columns, &hidden)
            .map_err(|e| df_error(&report.src, &index("blocks", i), &block.id, e))?;
        Ok((df, columns))
    }

    pub(super) fn column_metas(
        &self,
        df: &DataFrame,
        metas: Vec<(String, ExprSpec, Option<ExprSpec>, String, ExprSite)>,
        definition: impl Fn(&str, Option<&ExprSpec>) -> String,
    ) -> Result<Vec<ColumnMeta>, ReportError> {
        let mut out = Vec::new();
        for (name, spec, inherited, text, site) in metas {
            let field = df
                .schema()
                .field_with_unqualified_name(&name)
                .map_err(|e| ReportError::from(site.error(expr::clean(&e.to_string()))))?;
            let declared = spec.ty.or(inherited.as_ref().and_then(|s| s.ty));
            let ty = declared.unwrap_or_else(|| infer_type(&name, field.data_type()));
            if !type_fits(ty, field.data_type()) {
                return Err(site
                    .error(format!(
                        "declared type `{}` does not fit the computed type {}",
                        ty.name(),
                        field.data_type()
                    ))
                    .into());
            }
            let label = spec
                .label
                .clone()
                .or_else(|| inherited.as_ref().and_then(|s| s.label.clone()))
                .unwrap_or_else(|| name.clone());
            let description = spec
                .description
                .clone()
                .or_else(|| inherited.as_ref().and_then(|s| s.description.clone()));
            let mut def = definition(&text, inherited.as_ref());
            if let Some(inner) = inherited.as_ref().and_then(|s| s.expr.as_deref())
                && inner != text
            {
                def = format!("{def} = {inner}");
            }
            out.push(ColumnMeta {
                name,
                label,
                ty,
                definition: def,
                description,
                dimension: false,
                lower_is_better: spec.better.or(inherited.as_ref().and_then(|s| s.better))
                    == Some(crate::spec::Better::Lower),
                value_labels: vec![],
            });
        }
        Ok(out)
    }
}

/// `df` and its columns without the `hidden` ones: computed, usable by `sort` and by
/// other measures, not shown.
pub(super) fn without(
    df: DataFrame,
    columns: Vec<ColumnMeta>,
    hidden: &[&str],
) -> datafusion::error::Result<(DataFrame, Vec<ColumnMeta>)> {
    if hidden.is_empty() {
        return Ok((df, columns));
    }
    let shown: Vec<ColumnMeta> = columns
        .into_iter()
        .filter(|c| !hidden.contains(&c.name.as_str()))
        .collect();
    let df = df.select(shown.iter().map(|c| column(&c.name)).collect::<Vec<Expr>>())?;
    Ok((df, shown))
}
