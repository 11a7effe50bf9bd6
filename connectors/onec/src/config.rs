//! What the connector does with its settings (plain data in `svodka_config::onec`): the
//! password of a login and the 1C server's time zone, as this crate's errors.

pub use svodka_config::onec::{
    Contract, Counterparties, FileTable, Files, Login, OnecConfig, Sales,
};

use crate::Error;

/// The password of `login`: given in the settings, or read from the environment
/// variable they name.
pub fn password(login: &Login) -> Result<String, Error> {
    match (&login.password, &login.password_env) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            Error::Settings(format!(
                "the 1C password: environment variable {var} is not set"
            ))
        }),
        (None, None) => Ok(String::new()),
    }
}

/// The 1C server's time zone.
pub fn zone(config: &OnecConfig) -> Result<chrono_tz::Tz, Error> {
    svodka_schema::values::zone(&config.timezone).map_err(Error::Settings)
}
