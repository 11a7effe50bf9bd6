//! What a run produces: the result types of `svodka-results`, which renderers read
//! without seeing plans.

pub use svodka_results::*;
