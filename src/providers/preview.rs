//! A template's text as the customer will read it: the catalog's body with
//! the send's parameters in its placeholders, for dry runs and logs
//! ([`TemplateMessage::preview`](super::TemplateMessage::preview)).

use super::TemplateParameters;

/// The template body with its placeholders filled in.
///
/// One pass over the body. The result is the same as replacing each
/// placeholder in turn ([`fill_placeholders_in_turn`], the definition), which
/// is still used when a value or a name has braces or the body has braces
/// that are not placeholders: only then could one replacement make or break
/// another.
pub(super) fn fill_placeholders(body: &str, parameters: &TemplateParameters) -> String {
    let braces = |s: &str| s.bytes().any(|b| b == b'{' || b == b'}');
    let plain = match parameters {
        TemplateParameters::Positional(values) => {
            values.iter().all(|v| !v.is_empty() && !braces(v))
        }
        TemplateParameters::Named(pairs) => pairs
            .iter()
            .all(|(n, v)| !n.is_empty() && !braces(n) && !v.is_empty() && !braces(v)),
    };
    if !plain {
        return fill_placeholders_in_turn(body, parameters);
    }
    let value_of = |name: &str| -> Option<&str> {
        match parameters {
            TemplateParameters::Positional(values) => {
                if name.is_empty()
                    || !name.bytes().all(|b| b.is_ascii_digit())
                    || name.starts_with('0')
                {
                    return None;
                }
                let i: usize = name.parse().ok()?;
                values.get(i.checked_sub(1)?).map(String::as_str)
            }
            TemplateParameters::Named(pairs) => pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
        }
    };
    // `find` of a char is a fast byte search; `find` of "{{" is not.
    let pair = |text: &str, c: char| -> Option<usize> {
        let mut from = 0;
        while let Some(at) = text[from..].find(c) {
            let at = from + at;
            if text[at + 1..].starts_with(c) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    };
    let mut out = String::with_capacity(body.len() + 64);
    let mut rest = body;
    // Whether a `{{` of the body was kept as text. Only then can the output
    // hold a `{{`: the text between placeholders has none (each search stops
    // at the first) and the values have no braces.
    let mut kept_pair = false;
    while let Some(open) = pair(rest, '{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let filled = pair(after, '}').and_then(|close| {
            let name = &after[..close];
            if braces(name) {
                return None;
            }
            value_of(name).map(|value| (value, close))
        });
        match filled {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 2..];
            }
            None => {
                // Not a placeholder: keep one brace and look again after it.
                out.push('{');
                rest = &rest[open + 1..];
                kept_pair = true;
            }
        }
    }
    out.push_str(rest);
    if kept_pair && pair(&out, '{').is_some() {
        // Braces left over could form placeholders in the step-by-step
        // definition: answer with it.
        return fill_placeholders_in_turn(body, parameters);
    }
    out
}

/// The template body with each placeholder replaced in turn (positional ones
/// from the last to the first).
fn fill_placeholders_in_turn(body: &str, parameters: &TemplateParameters) -> String {
    let mut out = body.to_string();
    match parameters {
        TemplateParameters::Positional(values) => {
            for (i, value) in values.iter().enumerate().rev() {
                out = out.replace(&format!("{{{{{}}}}}", i + 1), value);
            }
        }
        TemplateParameters::Named(pairs) => {
            for (name, value) in pairs {
                out = out.replace(&format!("{{{{{name}}}}}"), value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_fill_is_the_fill_in_turn() {
        let bodies = [
            "Hi {{1}}, about {{2}} ({{3}}, {{4}}).",
            "{{1}}{{1}}{{2}}",
            "{{{1}}}",
            "{{{{1}}}}",
            "{{2{{1}}",
            "{{5}} {{0}} {{01}} {{ 1}} {{}} }}{{",
            "{{a{{1}}}}",
            "{{name}} and {{other}} and {{missing}}",
            "no placeholders",
            "",
            "{",
            "{{",
            "{{1",
            "x}}{{2}}",
        ];
        let value_sets: [&[&str]; 5] = [
            &["Anna", "price", "c-1", "m-2"],
            &["{{2}}", "b"],
            &["a}", "{b"],
            &["", "x"],
            &["1", "2", "3", "4", "5"],
        ];
        for body in bodies {
            for values in value_sets {
                let positional =
                    TemplateParameters::Positional(values.iter().map(|v| v.to_string()).collect());
                assert_eq!(
                    fill_placeholders(body, &positional),
                    fill_placeholders_in_turn(body, &positional),
                    "{body:?} {values:?}"
                );
                let names = ["name", "other", "1", "a"];
                let named = TemplateParameters::Named(
                    names
                        .iter()
                        .zip(values.iter())
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                );
                assert_eq!(
                    fill_placeholders(body, &named),
                    fill_placeholders_in_turn(body, &named),
                    "{body:?} {values:?} named"
                );
            }
        }
    }
}
