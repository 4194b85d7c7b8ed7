//! Template bodies: literal text with `{{variables}}` (Vendel-compatible).
//!
//! A variable is `{{name}}`, where `name` matches `[A-Za-z_][A-Za-z0-9_]*`; whitespace inside
//! the braces is allowed and ignored (`{{ name }}`). A lone `}}` or a single brace is literal
//! text. Values are inserted verbatim and never parsed again.

use std::fmt;

/// A parsed template body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// Why a body is not a valid template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without a matching `}}`, at this 1-based character position.
    #[error("Unclosed {{{{ at character {0}: close it with }}}}.")]
    Unclosed(usize),
    #[error("Invalid variable name \"{0}\": use letters, digits and _ , starting with a letter or _.")]
    InvalidName(String),
    /// `{{}}` (or only whitespace inside), at this 1-based character position.
    #[error("Empty variable {{{{}}}} at character {0}.")]
    Empty(usize),
}

/// A variable that `render` found no value for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Missing variable: {0}.")]
pub struct MissingVariable(pub String);

/// Whether `name` is a valid variable name.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl TemplateText {
    pub fn parse(body: &str) -> Result<TemplateText, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = body;
        // Characters consumed so far, for 1-based positions in errors.
        let mut consumed_chars = 0usize;
        while let Some(open) = rest.find("{{") {
            let literal = &rest[..open];
            let open_pos = consumed_chars + literal.chars().count() + 1;
            let after_open = &rest[open + 2..];
            let Some(close) = after_open.find("}}") else {
                return Err(TemplateError::Unclosed(open_pos));
            };
            let inner = &after_open[..close];
            let name = inner.trim();
            if name.is_empty() {
                return Err(TemplateError::Empty(open_pos));
            }
            if !is_valid_name(name) {
                return Err(TemplateError::InvalidName(name.to_owned()));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_owned()));
            }
            parts.push(Part::Variable(name.to_owned()));
            consumed_chars = open_pos + 1 + inner.chars().count() + 2;
            rest = &after_open[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(TemplateText { parts })
    }

    /// Variables in first-seen order, each once.
    pub fn variables(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Variable(name) = part
                && !seen.contains(&name.as_str())
            {
                seen.push(name);
            }
        }
        seen
    }

    /// Fills every variable through `lookup`; the first variable without a value is an error.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, MissingVariable> {
        let mut out = String::with_capacity(self.literal_len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match lookup(name) {
                    Some(value) => out.push_str(value),
                    None => return Err(MissingVariable(name.clone())),
                },
            }
        }
        Ok(out)
    }

    /// Fills known variables and leaves unknown ones as `{{name}}` (the editor's live preview).
    pub fn preview<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::with_capacity(self.literal_len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match lookup(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        out.push_str("{{");
                        out.push_str(name);
                        out.push_str("}}");
                    }
                },
            }
        }
        out
    }

    fn literal_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(t) => t.len(),
                Part::Variable(n) => n.len() + 4,
            })
            .sum()
    }
}

/// The body in canonical form: variables written as `{{name}}`.
impl fmt::Display for TemplateText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Variable(name) => write!(f, "{{{{{name}}}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn values<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn plain_text_has_no_variables() {
        let t = TemplateText::parse("Hello there } { }} done").unwrap();
        assert!(t.variables().is_empty());
        assert_eq!(t.render(|_| None).unwrap(), "Hello there } { }} done");
        assert_eq!(TemplateText::parse("").unwrap().render(|_| None).unwrap(), "");
    }

    #[test]
    fn variables_are_found_once_in_order() {
        let t = TemplateText::parse("Hi {{name}}, your code is {{ code }}. Bye {{name}}{{_x1}}").unwrap();
        assert_eq!(t.variables(), vec!["name", "code", "_x1"]);
    }

    #[test]
    fn render_fills_all_variables() {
        let t = TemplateText::parse("Hi {{ name }}, code {{code}}!").unwrap();
        let out = t
            .render(values(&[("name", "Ana"), ("code", "{{name}}")]))
            .unwrap();
        assert_eq!(out, "Hi Ana, code {{name}}!");
    }

    #[test]
    fn render_reports_the_first_missing_variable() {
        let t = TemplateText::parse("{{a}} {{b}} {{c}}").unwrap();
        assert_eq!(t.render(values(&[("a", "1")])), Err(MissingVariable("b".into())));
        assert_eq!(MissingVariable("b".into()).to_string(), "Missing variable: b.");
    }

    #[test]
    fn preview_keeps_unknown_variables() {
        let t = TemplateText::parse("Hi {{ name }}, code {{code}}").unwrap();
        assert_eq!(t.preview(values(&[("code", "42")])), "Hi {{name}}, code 42");
        assert_eq!(t.to_string(), "Hi {{name}}, code {{code}}");
    }

    #[test]
    fn unclosed_braces_are_reported_with_their_position() {
        assert_eq!(TemplateText::parse("Hi {{name"), Err(TemplateError::Unclosed(4)));
        assert_eq!(TemplateText::parse("é{{a}} {{b"), Err(TemplateError::Unclosed(8)));
        assert_eq!(
            TemplateError::Unclosed(4).to_string(),
            "Unclosed {{ at character 4: close it with }}."
        );
    }

    #[test]
    fn empty_variables_are_reported() {
        assert_eq!(TemplateText::parse("ab{{}}"), Err(TemplateError::Empty(3)));
        assert_eq!(TemplateText::parse("{{a}}{{  }}"), Err(TemplateError::Empty(6)));
        assert_eq!(
            TemplateError::Empty(3).to_string(),
            "Empty variable {{}} at character 3."
        );
    }

    #[test]
    fn invalid_names_are_reported() {
        for (body, name) in [
            ("{{1abc}}", "1abc"),
            ("{{first name}}", "first name"),
            ("{{a-b}}", "a-b"),
            ("{{{x}}}", "{x"),
            ("{{é}}", "é"),
        ] {
            assert_eq!(
                TemplateText::parse(body),
                Err(TemplateError::InvalidName(name.into())),
                "{body}"
            );
        }
        assert!(
            TemplateError::InvalidName("1a".into())
                .to_string()
                .ends_with("starting with a letter or _.")
        );
    }

    #[test]
    fn whitespace_inside_braces_is_trimmed() {
        let t = TemplateText::parse("{{\tname\n }}").unwrap();
        assert_eq!(t.variables(), vec!["name"]);
    }

    fn literal() -> impl Strategy<Value = String> {
        prop::collection::vec(
            any::<char>().prop_filter("no braces", |c| *c != '{' && *c != '}'),
            0..20,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    fn name() -> impl Strategy<Value = String> {
        let first = prop::sample::select(('a'..='z').chain('A'..='Z').chain(['_']).collect::<Vec<_>>());
        let rest = prop::collection::vec(
            prop::sample::select(('a'..='z').chain('0'..='9').chain(['_']).collect::<Vec<_>>()),
            0..8,
        );
        (first, rest).prop_map(|(f, r)| std::iter::once(f).chain(r).collect())
    }

    proptest! {
        #[test]
        fn parse_never_panics(chars in prop::collection::vec(
            prop_oneof![3 => any::<char>(), 2 => prop::sample::select(vec!['{', '}', ' ', 'a'])], 0..200)) {
            let body: String = chars.into_iter().collect();
            if let Ok(t) = TemplateText::parse(&body) {
                let _ = t.preview(|_| None);
                let _ = t.variables();
            }
        }

        #[test]
        fn render_round_trips(
            pieces in prop::collection::vec((literal(), name(), any::<bool>(), any::<String>()), 0..10),
            tail in literal(),
        ) {
            let mut body = String::new();
            let mut expected = String::new();
            let mut vals: HashMap<String, String> = HashMap::new();
            for (lit, var, spaced, value) in &pieces {
                body.push_str(lit);
                if *spaced {
                    body.push_str(&format!("{{{{ {var} }}}}"));
                } else {
                    body.push_str(&format!("{{{{{var}}}}}"));
                }
                let value = vals.entry(var.clone()).or_insert_with(|| value.clone());
                expected.push_str(lit);
                expected.push_str(value);
            }
            body.push_str(&tail);
            expected.push_str(&tail);
            let t = TemplateText::parse(&body).unwrap();
            let rendered = t.render(|n| vals.get(n).map(String::as_str)).unwrap();
            prop_assert_eq!(rendered, expected);
            prop_assert_eq!(TemplateText::parse(&t.to_string()).unwrap(), t);
        }
    }
}
