//! Where Python's jinja2 and minijinja disagree on everyday values, the Python side, since chat
//! templates were written against it:
//!
//! - printing: `{{ x }}` shows Python's `str(x)`: `None`, `True`, `1e-05`, `['a', "b'c"]`,
//!   `{'k': 1}` (minijinja would print `none`, `true`, `0.00001`, `["a", "b'c"]`);
//! - whitespace: `str.strip()`/`split()` and jinja2's `trim` use Python's `str.isspace`, which
//!   also counts U+001C..U+001F (Rust's `char::is_whitespace` does not);
//! - Python methods on strings, dicts and lists (`.startswith()`, `.items()`, …) come from
//!   `minijinja_contrib::pycompat`, except the whitespace-sensitive ones done here.
//!
//! Known gaps (none used by the templates in the goldens): minijinja has no tuples, so `(1, 2)` and
//! `d.items() | list` print as lists; no `"%s" % x` string formatting; no `wordcount` or `center`
//! filters; `repr` of strings escapes only ASCII/Latin-1 controls and the common Unicode spaces,
//! not every non-printable code point as Python does.

use std::fmt::Write as _;

use minijinja::value::{ValueKind, from_args};
use minijinja::{Error, ErrorKind, Output, State, Value};

/// Python's `str.isspace` for one character.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `repr(float)` for a finite or non-finite f64: shortest round-trip digits, fixed
/// notation for exponents -4..16, otherwise `d.ddde±XX`.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr, e.g. "-1.5e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
    }
    out
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`.
fn py_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\0'..='\u{1f}' | '\u{7f}'..='\u{a0}' | '\u{ad}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{1680}'
            | '\u{2000}'..='\u{200f}'
            | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{206f}'
            | '\u{3000}'
            | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str(value)`, or `repr(value)` when `repr` (as items inside a list or dict print).
pub fn py_str(out: &mut String, v: &Value, repr: bool) {
    match v.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number if !v.is_integer() => {
            out.push_str(&py_float_repr(f64::try_from(v.clone()).unwrap_or(f64::NAN)));
        }
        ValueKind::String if repr => py_str_repr(out, v.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            out.push('[');
            for (i, item) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str(out, &item, true);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str(out, &key, true);
                out.push_str(": ");
                py_str(out, &v.get_item(&key).unwrap_or_default(), true);
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

/// The environment's formatter: `{{ value }}` prints Python's `str(value)`.
pub fn format(out: &mut Output, _state: &mut State, v: &Value) -> Result<(), Error> {
    let text = match v.as_str() {
        Some(s) => return out.write_str(s).map_err(|_| Error::from(ErrorKind::WriteFailure)),
        None => {
            let mut s = String::new();
            py_str(&mut s, v, false);
            s
        }
    };
    out.write_str(&text).map_err(|_| Error::from(ErrorKind::WriteFailure))
}

/// The `string` filter: Python's `str(value)`.
pub fn string_filter(v: &Value) -> Value {
    if v.kind() == ValueKind::String {
        return v.clone();
    }
    let mut s = String::new();
    py_str(&mut s, v, false);
    Value::from(s)
}

/// jinja2's `iterable` test, `iter(value)` succeeding: strings, lists, dicts and Undefined are;
/// None, numbers and booleans are not (minijinja iterates `none` as empty, and says yes).
/// Templates ask `tools is iterable` with HF's `tools=None`.
pub fn is_iterable(v: &Value) -> bool {
    match v.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Number | ValueKind::Invalid => false,
        _ => v.is_undefined() || v.try_iter().is_ok(),
    }
}

/// jinja2's `sequence` test, `len(value)` and `value[...]` both existing: strings, lists, dicts
/// and Undefined (minijinja accepts only lists and Undefined).
pub fn is_sequence(v: &Value) -> bool {
    matches!(
        v.kind(),
        ValueKind::String | ValueKind::Bytes | ValueKind::Seq | ValueKind::Map | ValueKind::Undefined
    )
}

#[derive(Clone, Copy)]
enum Side {
    Both,
    Start,
    End,
}

/// `str.strip/lstrip/rstrip(chars=None)`.
fn py_strip<'s>(s: &'s str, chars: Option<&str>, side: Side) -> &'s str {
    let strip = |c: char| match chars {
        Some(set) => set.contains(c),
        None => is_py_space(c),
    };
    match side {
        Side::Both => s.trim_matches(strip),
        Side::Start => s.trim_start_matches(strip),
        Side::End => s.trim_end_matches(strip),
    }
}

/// jinja2's `trim(chars=None)` filter is `str(value).strip(chars)`.
pub fn trim_filter(v: &Value, chars: Option<&str>) -> String {
    let mut s = String::new();
    py_str(&mut s, v, false);
    py_strip(&s, chars, Side::Both).to_string()
}

/// `str.split(sep=None, maxsplit=-1)`.
fn py_split(s: &str, sep: Option<&str>, maxsplit: i64) -> Result<Vec<String>, Error> {
    let limit = usize::try_from(maxsplit).ok(); // negative: no limit
    match sep {
        Some("") => Err(Error::new(ErrorKind::InvalidOperation, "split: empty separator")),
        Some(sep) => Ok(match limit {
            Some(n) => s.splitn(n + 1, sep).map(String::from).collect(),
            None => s.split(sep).map(String::from).collect(),
        }),
        // Runs of whitespace separate; leading and trailing whitespace make no empty fields; once
        // `maxsplit` splits are done the rest is one field, leading whitespace stripped.
        None => {
            let mut parts = Vec::new();
            let mut rest = s.trim_start_matches(is_py_space);
            while !rest.is_empty() {
                if limit.is_some_and(|n| parts.len() == n) {
                    parts.push(rest.to_string());
                    break;
                }
                let end = rest.find(is_py_space).unwrap_or(rest.len());
                parts.push(rest[..end].to_string());
                rest = rest[end..].trim_start_matches(is_py_space);
            }
            Ok(parts)
        }
    }
}

/// Python methods on values: the whitespace-sensitive string ones here, the rest from
/// `minijinja_contrib::pycompat`.
pub fn unknown_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let side = match method {
            "strip" => Some(Side::Both),
            "lstrip" => Some(Side::Start),
            "rstrip" => Some(Side::End),
            _ => None,
        };
        if let Some(side) = side {
            let (chars,): (Option<&str>,) = from_args(args)?;
            return Ok(Value::from(py_strip(s, chars, side)));
        }
        match method {
            "split" => {
                let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
                return Ok(Value::from(py_split(s, sep, maxsplit.unwrap_or(-1))?));
            }
            // Python counts code points; minijinja-contrib would answer a byte offset.
            "find" | "rfind" => {
                let (needle,): (&str,) = from_args(args)?;
                let at = if method == "find" { s.find(needle) } else { s.rfind(needle) };
                return Ok(Value::from(at.map_or(-1, |b| s[..b].chars().count() as i64)));
            }
            "isspace" => {
                let () = from_args(args)?;
                return Ok(Value::from(!s.is_empty() && s.chars().all(is_py_space)));
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Python 3.11: repr(x) for each x.
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-2.5e-300, "-2.5e-300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want, "repr({x:e})");
        }
    }

    #[test]
    fn split_matches_python() {
        // Python 3.11: s.split(sep, maxsplit).
        let cases: [(&str, Option<&str>, i64, &[&str]); 6] = [
            ("  a b\u{1f}\tc  ", None, -1, &["a", "b", "c"]),
            ("  a b  c  ", None, 1, &["a", "b  c  "]),
            ("", None, -1, &[]),
            ("a</think>b</think>", Some("</think>"), -1, &["a", "b", ""]),
            ("a,b,c", Some(","), 1, &["a", "b,c"]),
            ("   ", None, 0, &[]),
        ];
        for (s, sep, n, want) in cases {
            assert_eq!(py_split(s, sep, n).unwrap(), want, "{s:?}.split({sep:?}, {n})");
        }
        assert!(py_split("a", Some(""), -1).is_err());
    }

    #[test]
    fn find_counts_code_points() {
        let env = minijinja::Environment::new();
        let mut state = env.empty_state();
        let s = Value::from("日本 本");
        for (method, needle, want) in [("find", "本", 1), ("rfind", "本", 3), ("find", "x", -1)] {
            let got = unknown_method(&mut state, &s, method, &[Value::from(needle)]).unwrap();
            assert_eq!(got, Value::from(want), "'日本 本'.{method}({needle:?})");
        }
    }

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(py_strip("\u{1c} x \u{3000}\n", None, Side::Both), "x");
        assert_eq!(py_strip("\n\nx\n", Some("\n"), Side::Start), "x\n");
        assert_eq!(py_strip("xy-x", Some("xy"), Side::End), "xy-");
    }

    #[test]
    fn str_of_containers_matches_python() {
        let v = Value::from_pairs([
            ("a", Value::from(vec![Value::from(1.0), Value::from(()), Value::from(true)])),
            ("b", Value::from(vec!["a'b", "c\"d", "it's \"x\"", "\n\u{7}é"])),
        ]);
        let mut s = String::new();
        py_str(&mut s, &v, false);
        // Python: str({'a': [1.0, None, True], 'b': ["a'b", 'c"d', 'it\'s "x"', '\n\x07é']})
        assert_eq!(s, r#"{'a': [1.0, None, True], 'b': ["a'b", 'c"d', 'it\'s "x"', '\n\x07é']}"#);
    }
}
