//! Human-given names (apps, API keys, access levels).

use std::fmt;

/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A name that was rejected, with the reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// A non-blank name of at most [`MAX_NAME_CHARS`] characters without control characters,
/// surrounding spaces trimmed. The rules match the `pattern` the APIs publish for names
/// (control characters are refused anywhere, so only spaces can surround a name).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        if raw.chars().any(char::is_control) {
            return Err(InvalidName::ControlCharacter);
        }
        let trimmed = raw.trim_matches(' ');
        if trimmed.is_empty() {
            return Err(InvalidName::Blank);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidName::TooLong);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            Name::parse("  Gold  ").map(Name::into_string),
            Ok("Gold".into())
        );
    }

    #[test]
    fn bad_names_say_why() {
        assert_eq!(Name::parse("   "), Err(InvalidName::Blank));
        assert_eq!(Name::parse(&"x".repeat(201)), Err(InvalidName::TooLong));
        assert_eq!(Name::parse("a\u{0}b"), Err(InvalidName::ControlCharacter));
        assert!(Name::parse(&"é".repeat(200)).is_ok());
    }
}
