//! Values that must never reach a log, a debug print, an API answer or a
//! metric: the admin token, the hash salt, destinations' credentials.

use std::fmt;

/// A secret value: its `Debug` prints `[redacted]`, it has no `Display`
/// and no `Serialize`, and [`Secret::expose`] is the one way to the value,
/// for the one place that needs it (comparing a bearer token, keying a hash,
/// sending a credential to its platform).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
