//! The environment's behaviour on small inline templates: whitespace control, the HF globals,
//! Python value semantics, errors, and loading from GGUF metadata. The byte-for-byte comparison
//! with jinja2 on real templates is `tests/tests/chat_templates.rs`.

use super::*;
use crate::gguf::{Gguf, MetaValue, Writer};

fn opts(add_generation_prompt: bool) -> RenderOptions {
    RenderOptions { add_generation_prompt, now: DateTime::new(2024, 7, 26, 14, 30, 5).unwrap() }
}

fn render(source: &str, messages: &[Message]) -> Result<String> {
    ChatTemplate::new(source, "<s>", "</s>")?.render(messages, &opts(true))
}

fn hello() -> Vec<Message> {
    vec![Message::new("user", "Hello")]
}

// The native server shares one template between request threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ChatTemplate>();
};

#[test]
fn whitespace_control_matches_hf_environment() {
    // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before one,
    // and one trailing newline of the template goes (jinja2's keep_trailing_newline=False).
    let src =
        "{% for m in messages %}\n    {% if true %}\n[{{ m.role }}]\n    {% endif %}\n{% endfor %}\nend\n";
    assert_eq!(render(src, &hello()).unwrap(), "[user]\nend");
    assert_eq!(render("a\n\n", &[]).unwrap(), "a\n");
}

#[test]
fn globals_and_variables_are_hf_ones() {
    let src = "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|\
{{ tools is defined }}|{{ messages | length }}|{{ strftime_now('%d %b %Y') }}";
    assert_eq!(render(src, &hello()).unwrap(), "<s>|</s>|True|None|None|True|1|26 Jul 2024");
}

#[test]
fn raise_exception_carries_the_template_message_and_line() {
    let src = "{% if messages[0].role != 'system' %}\n{{ raise_exception('System message required, got ' ~ messages[0].role) }}\n{% endif %}";
    match render(src, &hello()) {
        Err(Error::TemplateRaised { line, message }) => {
            assert_eq!(message, "System message required, got user");
            assert_eq!(line, Some(2));
        }
        other => panic!("expected TemplateRaised, got {other:?}"),
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let err =
        ChatTemplate::new("ok\n{% for m in messages %}\n{{ m.role }\n{% endfor %}", "", "").unwrap_err();
    match &err {
        Error::TemplateSyntax { line: Some(3), message } => {
            assert!(message.contains("syntax error"), "{message}")
        }
        other => panic!("expected TemplateSyntax at line 3, got {other:?}"),
    }
    assert!(err.to_string().starts_with("chat template syntax error at line 3: "), "{err}");
    let err = ChatTemplate::new("{% if x %}never closed", "", "").unwrap_err();
    assert!(matches!(err, Error::TemplateSyntax { .. }), "{err:?}");
}

#[test]
fn render_errors_are_not_raises() {
    // jinja2 also fails on an attribute of an undefined value.
    let err = render("{{ nothing.role }}", &hello()).unwrap_err();
    assert!(matches!(err, Error::TemplateRender { line: Some(1), .. }), "{err:?}");
}

#[test]
fn generation_tags_render_their_body() {
    let src = "{% for m in messages %}\n  {%- generation -%}\n  [{{ m.content }}]\n  {%+ endgeneration %}\n{% endfor %}";
    assert_eq!(
        rewrite_generation_tags(src),
        src.replace("generation -%}", "if true -%}").replace("endgeneration", "endif")
    );
    assert_eq!(render(src, &hello()).unwrap(), "[Hello]\n  ");
    // Only whole block tags change.
    let plain = "{{ 'generation' }} {% if generation %}{% endif %} {%- generations %}";
    assert_eq!(rewrite_generation_tags(plain), plain);
}

#[test]
fn loop_controls_work() {
    let src = "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}";
    assert_eq!(render(src, &[]).unwrap(), "023");
}

#[test]
fn python_methods_and_printing() {
    let msgs = [Message::new("assistant", "\n<think>plan</think>\n\n  Answer \u{1f}")];
    let src = "{% set c = messages[0].content %}{{ c.split('</think>')[-1].strip() }}|\
{{ c.startswith('\\n<think>') }}|{{ 'a b  c'.split() }}|\
{% for k, v in messages[0].items() %}{{ k }}={{ v | length }};{% endfor %}|{{ messages[0] | trim | string | length > 0 }}|\
{{ [1, 2.0, none, 'x'] }}|{{ 1e-5 }}|{{ '  t ' | trim }}.";
    assert_eq!(
        render(src, &msgs).unwrap(),
        "Answer|True|['a', 'b', 'c']|role=9;content=32;|True|[1, 2.0, None, 'x']|1e-05|t."
    );
}

#[test]
fn tojson_uses_python_layout_and_message_key_order() {
    let src = "{{ messages | tojson }}\n{{ messages[0] | tojson(indent=2) }}";
    let msgs = [Message::new("user", "é \"q\" <tag>\n")];
    assert_eq!(
        render(src, &msgs).unwrap(),
        "[{\"role\": \"user\", \"content\": \"é \\\"q\\\" <tag>\\n\"}]\n{\n  \"role\": \"user\",\n  \"content\": \"é \\\"q\\\" <tag>\\n\"\n}"
    );
}

#[test]
fn reversing_an_empty_conversation_does_not_panic() {
    // minijinja 2.24 indexed past the end here; Qwen3-style templates do it on `messages`.
    assert_eq!(
        render("{{ messages[::-1] | length }}{{ ''[::-1] }}{{ [1, 2, 3][0:2:-1] | list }}", &[]).unwrap(),
        "0[]"
    );
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let src = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let err = render(src, &[]).unwrap_err();
    assert!(matches!(&err, Error::TemplateRender { message, .. } if message.contains("fuel")), "{err:?}");
}

#[test]
fn chatml_fallback_renders_chatml() {
    let t = ChatTemplate::chatml("", "<|im_end|>");
    assert!(t.is_fallback());
    let msgs = [Message::new("system", "Be brief."), Message::new("user", "Hi")];
    assert_eq!(
        t.render(&msgs, &opts(true)).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(t.render(&msgs[1..], &opts(false)).unwrap(), "<|im_start|>user\nHi<|im_end|>\n");
}

fn metadata_file(template: Option<&str>, bos: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.set("general.architecture", "llama")
        .set("tokenizer.ggml.tokens", MetaValue::strings(["<unk>", "<s>", "</s>", "hi"]))
        .set("tokenizer.ggml.bos_token_id", bos)
        .set("tokenizer.ggml.eos_token_id", 2u32);
    if let Some(t) = template {
        w.set(CHAT_TEMPLATE_KEY, t);
    }
    w.to_bytes(&[]).unwrap()
}

#[test]
fn from_metadata_reads_template_and_special_tokens() {
    let bytes = metadata_file(Some("{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"), 1);
    let g = Gguf::parse(&bytes).unwrap();
    let t = ChatTemplate::from_metadata(g.metadata()).unwrap();
    assert!(!t.is_fallback());
    assert_eq!((t.bos_token(), t.eos_token()), ("<s>", "</s>"));
    assert_eq!(t.render(&hello(), &opts(false)).unwrap(), "<s>Hello</s>");
}

#[test]
fn from_metadata_falls_back_to_chatml_without_a_template() {
    let bytes = metadata_file(None, 1);
    let g = Gguf::parse(&bytes).unwrap();
    let t = ChatTemplate::from_metadata(g.metadata()).unwrap();
    assert!(t.is_fallback());
    assert_eq!(t.source(), CHATML_TEMPLATE);
}

#[test]
fn from_metadata_rejects_bad_token_ids_and_broken_templates() {
    let bytes = metadata_file(Some("x"), 9);
    let g = Gguf::parse(&bytes).unwrap();
    let err = ChatTemplate::from_metadata(g.metadata()).unwrap_err();
    assert_eq!(
        err,
        Error::TokenIdOutOfRange { key: "tokenizer.ggml.bos_token_id".into(), id: 9, n_vocab: 4 }
    );
    let bytes = metadata_file(Some("{% if %}"), 1);
    let g = Gguf::parse(&bytes).unwrap();
    let err = ChatTemplate::from_metadata(g.metadata()).unwrap_err();
    assert!(matches!(err, Error::TemplateSyntax { line: Some(1), .. }), "{err:?}");
}
