//! End-to-end tests: the `svodka` binary run on fixtures, as a user runs it.
//! One test binary, split by topic.

mod cli;
mod clients;
mod dsl;
mod forgotten;
mod language;
mod manager_efficiency;
mod marketing;
mod sales_dynamics;
mod sales_plan;
mod util;
