//! End-to-end tests: the `svodka` binary run on fixtures, as a user runs it.
//! One test binary, split by topic.

mod bench;
mod bitrix24;
mod browser;
mod buckets;
mod cases_language;
mod cli;
mod clients;
mod cluster;
mod dsl;
mod forgotten;
mod fuzz;
mod html;
mod language;
mod manager_efficiency;
mod marketing;
mod onec;
mod plugins;
mod sales_dynamics;
mod sales_plan;
mod service;
mod store;
mod util;
mod whole_reports;
mod xlsx;
