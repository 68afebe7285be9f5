//! Chat templates against Python jinja2: every case of `tests/goldens/templates/chat_templates.json`
//! (made by `tests/scripts/make_template_goldens.py` with HF's environment) rendered by
//! `aether_core::chat_template` must come out byte for byte the same, or fail the same way: a
//! `raise_exception` with the same message, or some other render error (engines word those
//! differently, so only the class is compared). Real templates are read from `models/templates/`
//! and the default model's GGUF; inline ones (ChatML, the `features` probe) from the goldens.

use aether_core::Error;
use aether_core::chat_template::{CHATML_TEMPLATE, ChatTemplate, DateTime, Message, RenderOptions};
use aether_core::gguf::{Gguf, MetaValue, Writer};
use aether_tests::{goldens_dir, model_path, models_dir};
use serde_json::Value as Json;

/// Templates the goldens must cover (the script may add more).
const REQUIRED: &[&str] = &[
    "SmolLM2-135M-Instruct",
    "chatml-fallback",
    "features",
    "meta-llama-Llama-3.1-8B-Instruct",
    "Qwen-Qwen2.5-7B-Instruct",
    "microsoft-Phi-3.5-mini-instruct",
    "mistralai-Mistral-Nemo-Instruct-2407",
    "google-gemma-2-2b-it",
];

fn golden() -> Json {
    let path = goldens_dir().join("templates").join("chat_templates.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("golden field `{key}` is not a string in {v}"))
}

fn now(golden: &Json) -> DateTime {
    let n: Vec<i64> =
        golden["now"].as_array().expect("now").iter().map(|x| x.as_i64().expect("now field")).collect();
    DateTime::new(n[0] as i32, n[1] as u8, n[2] as u8, n[3] as u8, n[4] as u8, n[5] as u8)
        .expect("golden date")
}

fn messages(conv: &Json) -> Vec<Message> {
    conv.as_array()
        .expect("conversation")
        .iter()
        .map(|m| Message::new(str_of(m, "role"), str_of(m, "content")))
        .collect()
}

/// The template a golden entry names, built the way the engine will build it.
fn load(entry: &Json) -> ChatTemplate {
    let name = str_of(entry, "name");
    let (bos, eos) = (str_of(entry, "bos_token"), str_of(entry, "eos_token"));
    let source = &entry["source"];
    if let Some(file) = source["gguf"].as_str() {
        let bytes = std::fs::read(model_path(file)).expect("read model");
        let gguf = Gguf::parse(&bytes).expect("parse model");
        let t = ChatTemplate::from_metadata(gguf.metadata()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!t.is_fallback(), "{name}: the GGUF has a template but the fallback was used");
        assert_eq!((t.bos_token(), t.eos_token()), (bos, eos), "{name}: special tokens from the GGUF vocab");
        return t;
    }
    let text = if let Some(file) = source["file"].as_str() {
        let path = models_dir().join("templates").join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `bash scripts/fetch-models.sh`)", path.display()))
    } else {
        str_of(source, "inline").to_string()
    };
    ChatTemplate::new(&text, bos, eos).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Where two renders part, with some context on both sides.
fn first_difference(got: &str, want: &str) -> String {
    let (g, w) = (got.as_bytes(), want.as_bytes());
    let at = g.iter().zip(w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
    let window =
        |s: &[u8]| String::from_utf8_lossy(&s[at.saturating_sub(40)..(at + 40).min(s.len())]).into_owned();
    format!(
        "first difference at byte {at} (lengths: got {}, want {})\n      got:  …{:?}…\n      want: …{:?}…",
        g.len(),
        w.len(),
        window(g),
        window(w)
    )
}

#[test]
fn templates_render_like_jinja2() {
    let golden = golden();
    let now = now(&golden);
    let conversations = &golden["conversations"];
    let templates = golden["templates"].as_array().expect("templates");
    for required in REQUIRED {
        assert!(templates.iter().any(|t| t["name"] == *required), "goldens lack template {required}");
    }

    let mut failures = Vec::new();
    let mut n_cases = 0;
    for entry in templates {
        let name = str_of(entry, "name");
        let template = load(entry);
        for case in entry["cases"].as_array().expect("cases") {
            n_cases += 1;
            let conv = str_of(case, "conversation");
            let add_generation_prompt =
                case["add_generation_prompt"].as_bool().expect("add_generation_prompt");
            let opts = RenderOptions { add_generation_prompt, now };
            let got = template.render(&messages(&conversations[conv]), &opts);
            let label = format!("{name} / {conv} / add_generation_prompt={add_generation_prompt}");
            match (&got, case.get("output"), case.get("error")) {
                (Ok(out), Some(_), _) if out == str_of(case, "output") => {}
                (Ok(out), Some(want), _) => failures.push(format!(
                    "{label}: output differs: {}",
                    first_difference(out, want.as_str().unwrap())
                )),
                (Err(e), Some(_), _) => failures.push(format!("{label}: jinja2 rendered, we failed: {e}")),
                (got, None, Some(err)) => {
                    let (kind, message) = (str_of(err, "kind"), str_of(err, "message"));
                    let ok = match (kind, got) {
                        ("raise", Err(Error::TemplateRaised { message: m, .. })) => m == message,
                        ("render", Err(Error::TemplateRender { .. })) => true,
                        _ => false,
                    };
                    if !ok {
                        failures.push(format!(
                            "{label}: jinja2 failed with {kind} error {message:?}, we gave {got:?}"
                        ));
                    }
                }
                _ => panic!("{label}: golden case has neither output nor error: {case}"),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n_cases} template cases differ from jinja2:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn chatml_fallback_is_the_golden_chatml() {
    let golden = golden();
    let entry =
        golden["templates"].as_array().unwrap().iter().find(|t| t["name"] == "chatml-fallback").unwrap();
    assert_eq!(
        CHATML_TEMPLATE,
        str_of(&entry["source"], "inline"),
        "CHATML_TEMPLATE and the script's CHATML differ"
    );

    // A file without tokenizer.chat_template gets ChatML, and says so.
    let mut w = Writer::new();
    w.set("general.architecture", "llama")
        .set("tokenizer.ggml.tokens", MetaValue::strings(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
        .set("tokenizer.ggml.eos_token_id", 2u32);
    let bytes = w.to_bytes(&[]).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    let t = ChatTemplate::from_metadata(gguf.metadata()).unwrap();
    assert!(t.is_fallback());
    assert_eq!((t.bos_token(), t.eos_token()), ("", "<|im_end|>"));
    let opts = RenderOptions { add_generation_prompt: true, now: now(&golden) };
    let out = t.render(&[Message::new("user", "Hi")], &opts).unwrap();
    assert_eq!(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

#[test]
fn syntax_error_is_a_clear_template_error() {
    // An unclosed `for` in the middle of a Llama-style template.
    let source = "{{- bos_token }}\n{%- for message in messages %}\n{{- message['content'] }}\n{%- if add_generation_prompt %}x{%- endif %}\n";
    let err = ChatTemplate::new(source, "<s>", "</s>").unwrap_err();
    let Error::TemplateSyntax { line, message } = &err else {
        panic!("expected TemplateSyntax, got {err:?}")
    };
    assert!(line.is_some(), "no line in {err:?}");
    assert!(
        message.contains("endfor") || message.contains("end of input"),
        "message does not say what is missing: {message}"
    );
    assert!(err.to_string().starts_with("chat template syntax error at line "), "{err}");
}
