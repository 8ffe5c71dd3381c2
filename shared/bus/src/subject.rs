//! NATS subject syntax: validation and wildcard matching.
//!
//! A subject is a non-empty sequence of non-empty tokens separated by `.`, without whitespace,
//! e.g. `keel.v1.orders.created`. A subscription *pattern* may additionally use wildcards as whole
//! tokens: `*` matches exactly one token and `>` matches one or more trailing tokens (so it must be
//! the last token). Subjects that are published to must not contain wildcards.
//!
//! This module is slightly stricter than the NATS server: the characters `*` and `>` are only
//! accepted as whole wildcard tokens (NATS would treat `foo*` as a literal token). Everything this
//! module accepts is therefore also valid, with the same meaning, on a real NATS server.

use crate::Error;

/// Which kind of token a validation pass accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subject,
    Pattern,
}

fn validate(s: &str, kind: Kind) -> Result<(), Error> {
    let what = match kind {
        Kind::Subject => "subject",
        Kind::Pattern => "pattern",
    };
    let invalid = |reason: &str| Err(Error::InvalidSubject(format!("{what} {s:?} {reason}")));
    if s.is_empty() {
        return invalid("is empty");
    }
    let mut tokens = s.split('.').peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() {
            return invalid("has an empty token");
        }
        if token.chars().any(char::is_whitespace) {
            return invalid("contains whitespace");
        }
        match token {
            "*" | ">" if kind == Kind::Subject => {
                return invalid("contains a wildcard (only subscription patterns may)");
            }
            ">" if tokens.peek().is_some() => {
                return invalid("has `>` before its last token");
            }
            "*" | ">" => {}
            _ if token.contains(['*', '>']) => {
                return invalid("uses `*` or `>` inside a token (wildcards must be whole tokens)");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that `s` is a valid subject to publish (or send a request) to: non-empty tokens, no
/// whitespace, no wildcards.
///
/// # Errors
/// [`Error::InvalidSubject`] describing the first problem found.
pub fn validate_subject(s: &str) -> Result<(), Error> {
    validate(s, Kind::Subject)
}

/// Checks that `p` is a valid subscription pattern: like a subject, but tokens may be the
/// wildcards `*` (one token) or `>` (one or more trailing tokens; must be the last token).
///
/// # Errors
/// [`Error::InvalidSubject`] describing the first problem found.
pub fn validate_pattern(p: &str) -> Result<(), Error> {
    validate(p, Kind::Pattern)
}

/// Checks a queue group name: non-empty, no whitespace.
///
/// # Errors
/// [`Error::InvalidSubject`] naming the group.
pub fn validate_group(group: &str) -> Result<(), Error> {
    if group.is_empty() || group.chars().any(char::is_whitespace) {
        Err(Error::InvalidSubject(format!(
            "queue group {group:?} is empty or contains whitespace"
        )))
    } else {
        Ok(())
    }
}

/// Whether `subject` is matched by the subscription `pattern`.
///
/// Both arguments are expected to be valid (see [`validate_subject`] and [`validate_pattern`]);
/// for invalid input the result is unspecified but the function never panics. Matching does not
/// allocate.
#[must_use]
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut pattern_tokens = pattern.split('.');
    let mut subject_tokens = subject.split('.');
    loop {
        match (pattern_tokens.next(), subject_tokens.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_subjects() {
        for s in [
            "a",
            "keel.v1.orders",
            "a-b_c.D9",
            "_INBOX.abc.1",
            "ünïcode.ok",
        ] {
            assert_eq!(validate_subject(s), Ok(()), "{s}");
            assert_eq!(validate_pattern(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn invalid_subjects() {
        for s in [
            "", ".", "a.", ".a", "a..b", "a b", "a.\tb", "a.b\n", "*", ">", "a.*", "a.>", "a.*.b",
            "a*", "a.b>", "*a.b",
        ] {
            assert!(
                matches!(validate_subject(s), Err(Error::InvalidSubject(_))),
                "{s:?} must be rejected"
            );
        }
    }

    #[test]
    fn valid_patterns() {
        for p in ["*", ">", "a.*", "a.>", "*.*", "*.b.>", "a.*.c", "*.>"] {
            assert_eq!(validate_pattern(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn invalid_patterns() {
        for p in [
            "", "a..b", "a.", ">.a", "a.>.b", "a.>.>", "a*", "a.b*", "a.>b", "a b.*", " ",
        ] {
            assert!(
                matches!(validate_pattern(p), Err(Error::InvalidSubject(_))),
                "{p:?} must be rejected"
            );
        }
    }

    #[test]
    fn error_message_names_the_subject() {
        let err = validate_subject("a..b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid subject: subject \"a..b\" has an empty token"
        );
    }

    #[test]
    fn exact_matching() {
        assert!(matches("a", "a"));
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b", "a.c"));
        assert!(!matches("ab", "a.b"));
    }

    #[test]
    fn star_matches_exactly_one_token() {
        assert!(matches("*", "a"));
        assert!(!matches("*", "a.b"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.*.c", "a.x.c"));
        assert!(!matches("a.*.c", "a.x.d"));
        assert!(matches("*.*", "x.y"));
        assert!(!matches("*.*", "x"));
    }

    #[test]
    fn gt_matches_one_or_more_trailing_tokens() {
        assert!(matches(">", "a"));
        assert!(matches(">", "a.b.c"));
        assert!(matches("a.>", "a.b"));
        assert!(matches("a.>", "a.b.c.d"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.>", "b.c"));
        assert!(matches("*.b.>", "x.b.c"));
        assert!(!matches("*.b.>", "x.b"));
        assert!(matches("*.>", "x.y"));
        assert!(!matches("*.>", "x"));
    }

    /// A valid literal token.
    fn token() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_-]{1,6}"
    }

    /// A subject with 1..=8 tokens, plus a wildcard mask with one flag per token.
    fn subject_with_mask() -> impl Strategy<Value = (Vec<String>, Vec<bool>)> {
        prop::collection::vec(token(), 1..=8).prop_flat_map(|tokens| {
            let n = tokens.len();
            (Just(tokens), prop::collection::vec(any::<bool>(), n))
        })
    }

    proptest! {
        #[test]
        fn generalised_pattern_matches(
            (tokens, stars) in subject_with_mask(),
            gt_at in any::<prop::sample::Index>(),
            use_gt in any::<bool>(),
        ) {
            let subject = tokens.join(".");
            prop_assert!(validate_subject(&subject).is_ok());
            let mut pattern: Vec<&str> = tokens
                .iter()
                .zip(&stars)
                .map(|(t, &star)| if star { "*" } else { t.as_str() })
                .collect();
            if use_gt {
                pattern.truncate(gt_at.index(tokens.len()));
                pattern.push(">");
            }
            let pattern = pattern.join(".");
            prop_assert!(validate_pattern(&pattern).is_ok(), "{}", pattern);
            prop_assert!(matches(&pattern, &subject), "{} !~ {}", pattern, subject);
        }

        #[test]
        fn changed_literal_token_does_not_match(
            (tokens, stars) in subject_with_mask(),
            changed in any::<prop::sample::Index>(),
        ) {
            let subject = tokens.join(".");
            let changed = changed.index(tokens.len());
            let pattern: Vec<String> = tokens
                .iter()
                .zip(&stars)
                .enumerate()
                .map(|(i, (t, &star))| {
                    if i == changed {
                        format!("{t}x")
                    } else if star {
                        "*".to_owned()
                    } else {
                        t.clone()
                    }
                })
                .collect();
            let pattern = pattern.join(".");
            prop_assert!(validate_pattern(&pattern).is_ok(), "{}", pattern);
            prop_assert!(!matches(&pattern, &subject), "{} ~ {}", pattern, subject);
        }

        #[test]
        fn different_token_count_does_not_match(
            (tokens, stars) in subject_with_mask(),
            extra in token(),
        ) {
            let subject = tokens.join(".");
            let pattern: Vec<&str> = tokens
                .iter()
                .zip(&stars)
                .map(|(t, &star)| if star { "*" } else { t.as_str() })
                .collect();
            let longer = format!("{}.{extra}", pattern.join("."));
            prop_assert!(!matches(&longer, &subject));
            if pattern.len() > 1 {
                let shorter = pattern[..pattern.len() - 1].join(".");
                prop_assert!(!matches(&shorter, &subject));
            }
        }
    }
}
