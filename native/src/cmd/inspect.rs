//! `aether inspect MODEL.gguf`: what a file holds, at a glance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aether_core::gguf::{Gguf, Value};
use aether_core::quant::GgmlType;

/// A human-readable summary of a parsed file.
pub fn summary(g: &Gguf<'_>, file_len: u64) -> String {
    let meta = g.metadata();
    let arch = meta.get_str("general.architecture").unwrap_or("(none)");
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<18} {v}");
    };
    line("architecture", arch.to_string());
    if let Ok(name) = meta.get_str("general.name") {
        line("name", name.to_string());
    }
    line("gguf version", g.header.version.to_string());
    line("file size", format!("{} ({file_len} bytes)", human_bytes(file_len)));
    let params: u64 = g.tensors().iter().map(|t| t.n_elements()).sum();
    let data: u64 = g.tensors().iter().map(|t| t.size).sum();
    line("parameters", format!("{} ({params})", human_count(params)));
    line("tensor data", format!("{} in {} tensors", human_bytes(data), g.tensors().len()));
    if params > 0 {
        line("bits per weight", format!("{:.2}", data as f64 * 8.0 / params as f64));
    }
    let mut hist: BTreeMap<GgmlType, (usize, u64)> = BTreeMap::new();
    for t in g.tensors() {
        let e = hist.entry(t.ty).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    let types: Vec<String> =
        hist.iter().map(|(ty, (n, bytes))| format!("{ty} ×{n} ({})", human_bytes(*bytes))).collect();
    line("tensor types", if types.is_empty() { "(no tensors: vocab only)".into() } else { types.join(", ") });
    for (key, label) in [
        ("context_length", "context length"),
        ("embedding_length", "embedding"),
        ("block_count", "layers"),
        ("attention.head_count", "heads"),
        ("attention.head_count_kv", "kv heads"),
        ("feed_forward_length", "ffn"),
    ] {
        if let Some(v) = meta.get(&format!("{arch}.{key}")) {
            line(label, value_text(v));
        }
    }
    let tok = match (meta.get_str("tokenizer.ggml.model"), meta.get_array("tokenizer.ggml.tokens")) {
        (Ok(model), Ok(tokens)) => {
            let pre = meta
                .get_str("tokenizer.ggml.pre")
                .map(|p| format!(", pre-tokenizer {p}"))
                .unwrap_or_default();
            format!("{model} ({} tokens{pre})", tokens.len())
        }
        (Ok(model), Err(_)) => format!("{model} (no vocabulary)"),
        _ => "(none)".into(),
    };
    line("tokenizer", tok);
    let template = match meta.get_str("tokenizer.chat_template") {
        Ok(t) => format!("yes ({} bytes)", t.len()),
        Err(_) => "no (ChatML will be used)".into(),
    };
    line("chat template", template);
    s
}

fn value_text(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Array(a) => format!("[{} × {}]", a.len(), a.elem_type().name()),
        v => v
            .as_integer()
            .map(|i| i.to_string())
            .or_else(|| v.as_f64().map(|f| f.to_string()))
            .unwrap_or_else(|| format!("{v:?}")),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{x:.2} {}", UNITS[u]) }
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}
