//! What an expression's text names (identifiers, qualifiers, columns fixed by a filter),
//! read from SQL without planning it.

use super::*;

/// `from`, then the qualifiers of the block's measures: the names of the models it reads
/// (some may not exist; compiling reports those).
pub(crate) fn block_model_names(
    state: &SessionState,
    block: &crate::spec::BlockSpec,
) -> Vec<String> {
    let mut out: Vec<String> = block.from.iter().cloned().collect();
    for (name, spec) in block.measures.iter() {
        for q in qualifiers(state, spec.expr.as_deref().unwrap_or(name)) {
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

/// The qualifiers (`x` in `x.y`) an expression uses, found syntactically (none where it
/// does not parse: the planner reports that, with its place).
pub(super) fn qualifiers(state: &SessionState, text: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast;
    let parsed = expr::parse(state, text);
    let Some(parsed) = parsed.expr() else {
        return vec![];
    };
    let mut out = Vec::new();
    let _ = ast::visit_expressions(parsed, |e| {
        if let ast::Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
        {
            let q = parts[0].value.to_lowercase();
            if !out.contains(&q) {
                out.push(q);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// Every name an expression mentions (`a`, and `b` of `m.b`): a superset of the columns
/// it reads.
pub(super) fn identifiers(state: &SessionState, text: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast;
    let parsed = expr::parse(state, text);
    let Some(parsed) = parsed.expr() else {
        return vec![text.to_string()];
    };
    let mut out = Vec::new();
    let _ = ast::visit_expressions(parsed, |e| {
        match e {
            ast::Expr::Identifier(id) => out.push(id.value.clone()),
            ast::Expr::CompoundIdentifier(parts) => {
                out.extend(parts.last().map(|p| p.value.clone()));
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// The columns a filter fixes to one value: `c = 'literal'` among its `and`-ed terms.
pub(super) fn fixed_columns(state: &SessionState, text: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::ast;
    fn walk(e: &ast::Expr, out: &mut Vec<String>) {
        match e {
            ast::Expr::Nested(inner) => walk(inner, out),
            ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::And,
                right,
            } => {
                walk(left, out);
                walk(right, out);
            }
            ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } => match (left.as_ref(), right.as_ref()) {
                (ast::Expr::Identifier(id), ast::Expr::Value(_))
                | (ast::Expr::Value(_), ast::Expr::Identifier(id)) => out.push(id.value.clone()),
                _ => {}
            },
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(parsed) = expr::parse(state, text).expr() {
        walk(parsed, &mut out);
    }
    out
}

pub(super) fn scope_target(scope: &Scope, name: &str) -> Option<Target> {
    scope.get(None, name).cloned()
}

/// True when `text` is one plain name (possibly `model.name`).
pub(super) fn is_identifier(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.split('.').count() <= 2
        && t.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}
