//! A strict `application/x-www-form-urlencoded` reader for query strings and
//! form bodies.
//!
//! Lenient decoders (including `form_urlencoded`) keep a broken `%zz` as text
//! and replace invalid UTF-8 with U+FFFD, silently storing something the
//! sender never meant. A tracker must not credit a mangled click id or store a
//! mangled sub-ID, so this reader refuses instead: every error is a 400 with a
//! sentence saying what was wrong.

use super::DomainError;

/// Longest query string or form body clickback reads (bytes). Real tracking
/// links and postbacks are far below it; 20 KB junk is refused, not parsed.
pub const MAX_PARAMS_LEN: usize = 8 * 1024;

/// Decoded `name=value` pairs in their original order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes a query string (without the `?`) or a form body.
    pub fn parse(raw: &[u8]) -> Result<Self, DomainError> {
        if raw.len() > MAX_PARAMS_LEN {
            return Err(DomainError::invalid(format!(
                "parameters are {} bytes long; at most {MAX_PARAMS_LEN} are accepted",
                raw.len()
            )));
        }
        let mut pairs = Vec::new();
        for piece in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &piece[piece.len()..]),
            };
            let name = decode_component(name)?;
            let value = decode_component(value).map_err(|e| e.in_field(&name))?;
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// Builds params from already-decoded pairs (a JSON body, a test).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// Every decoded pair, in order (what a signature covers).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Appends the pairs of `other` (query and body of one POST).
    pub fn extend(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// The value of a parameter known by any of `names` (the canonical name
    /// first, then aliases). A parameter given twice with different values is
    /// refused: guessing which one the sender meant could credit the wrong click.
    pub fn get(&self, names: &[&str]) -> Result<Option<&str>, DomainError> {
        let mut found: Option<&str> = None;
        for (name, value) in &self.pairs {
            if names.contains(&name.as_str()) {
                match found {
                    Some(previous) if previous != value => {
                        return Err(DomainError::invalid(format!(
                            "{} is given more than once with different values",
                            names[0]
                        )))
                    }
                    _ => found = Some(value),
                }
            }
        }
        Ok(found)
    }

    /// Like [`Params::get`], but treats an empty value as absent, which is
    /// what `&sub1=&sub2=x` from a link builder means.
    pub fn get_nonempty(&self, names: &[&str]) -> Result<Option<&str>, DomainError> {
        Ok(self.get(names)?.filter(|v| !v.is_empty()))
    }
}

/// Percent-decodes one component, `+` meaning space; refuses broken escapes,
/// invalid UTF-8 and NUL.
pub fn decode_component(raw: &[u8]) -> Result<String, DomainError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
                match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => {
                        return Err(DomainError::invalid(
                            "invalid percent-encoding (a % must be followed by two hex digits)",
                        ))
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if out.contains(&0) {
        return Err(DomainError::invalid("NUL bytes are not allowed"));
    }
    String::from_utf8(out).map_err(|_| DomainError::invalid("value is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Params {
        Params::parse(raw.as_bytes()).expect(raw)
    }

    #[test]
    fn decodes_percent_escapes_plus_and_utf8() {
        let p = params("a=hello+world&b=%C3%A9t%C3%A9&c=&d&e=x%3Dy%26z");
        assert_eq!(p.get(&["a"]), Ok(Some("hello world")));
        assert_eq!(p.get(&["b"]), Ok(Some("été")));
        assert_eq!(p.get(&["c"]), Ok(Some("")));
        assert_eq!(p.get_nonempty(&["c"]), Ok(None));
        assert_eq!(p.get(&["d"]), Ok(Some("")));
        assert_eq!(p.get(&["e"]), Ok(Some("x=y&z")));
        assert_eq!(p.get(&["missing"]), Ok(None));
    }

    #[test]
    fn refuses_broken_escapes_invalid_utf8_and_nul() {
        for bad in [
            "a=%zz", "a=%4", "a=%", "a=%C3%28", "a=%FF", "a=x%00y", "%zz=1",
        ] {
            assert!(Params::parse(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        assert!(Params::parse(b"a=\xff").is_err());
    }

    #[test]
    fn aliases_resolve_and_conflicts_are_refused() {
        let p = params("cid=abc&other=1");
        assert_eq!(p.get(&["click_id", "cid"]), Ok(Some("abc")));
        assert!(params("click_id=a&cid=b")
            .get(&["click_id", "cid"])
            .is_err());
        assert_eq!(
            params("click_id=a&cid=a").get(&["click_id", "cid"]),
            Ok(Some("a"))
        );
    }

    #[test]
    fn refuses_oversized_input() {
        let long = format!("a={}", "x".repeat(20 * 1024));
        assert!(Params::parse(long.as_bytes()).is_err());
    }
}
