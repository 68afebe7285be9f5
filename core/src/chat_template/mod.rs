//! Chat templates: turn a conversation into the prompt text a model was trained on, by rendering
//! the Jinja template a GGUF stores under `tokenizer.chat_template`.
//!
//! The reference is Hugging Face's `apply_chat_template`, which renders with Python jinja2 in an
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with the `loopcontrols`
//! extension (`break`/`continue`), no autoescaping, jinja2's default of dropping one trailing
//! newline of the template, its own `tojson` filter (`json.dumps` with `ensure_ascii=False`), and
//! the globals `raise_exception(msg)` and `strftime_now(fmt)`, and the `{% generation %}` tag of
//! its AssistantTracker (a no-op when rendering text). It renders with the variables
//! `messages` (a list of `{"role", "content"}` dicts), `tools=None`, `documents=None`,
//! `add_generation_prompt`, and the tokenizer's special tokens (`bos_token`, `eos_token`). This
//! module rebuilds that environment on minijinja, closing the gaps that show in real templates
//! (Python's `str()` of values, string methods, whitespace, the `iterable`/`sequence` tests on
//! `None`; see `pycompat`), and is tested
//! byte-for-byte against jinja2 goldens in `tests/tests/chat_templates.rs`.
//!
//! Files: `mod.rs` (the environment and the API), `json.rs` (`tojson`), `date.rs` (the caller's
//! date behind `strftime_now`; the crate reads no clock), `pycompat.rs` (Python value semantics).

mod date;
mod json;
mod pycompat;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};

pub use date::DateTime;

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// The GGUF key holding the template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// The template used when a file has none: ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), as
/// llama.cpp falls back to. It ignores `bos_token`/`eos_token`.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Name the template has inside minijinja (shown in its errors; no extension, so no autoescape).
const TEMPLATE_NAME: &str = "chat_template";

/// Instruction budget of one render. The goldens' four-message conversations all fit in 2,000
/// (real templates spend some hundreds per message), so this leaves room for conversations of
/// thousands of turns while stopping a hostile template (nested loops over `range(100000)`)
/// within a second.
const FUEL: u64 = 10_000_000;

/// One conversation turn. `content` is plain text; tool calls will join as more fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message { role: role.into(), content: content.into() }
    }

    /// The dict a template sees: `{"role": .., "content": ..}`, keys in that order (it shows in
    /// `tojson` and `.items()`).
    fn to_value(&self) -> Value {
        Value::from_pairs([
            ("role", Value::from(self.role.as_str())),
            ("content", Value::from(self.content.as_str())),
        ])
    }
}

/// Per-render settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// End with the header of an assistant turn, so the model's reply comes next.
    pub add_generation_prompt: bool,
    /// What `strftime_now(fmt)` formats (templates put today's date in the system prompt).
    pub now: DateTime,
}

/// A compiled chat template plus the special-token strings it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>, // holds the compiled template as TEMPLATE_NAME
    source: String,
    bos_token: String,
    eos_token: String,
    fallback: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_len", &self.source().len())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// HF's environment also knows `{% generation %}…{% endgeneration %}` (its AssistantTracker, which
/// marks assistant text for training masks and otherwise renders the body unchanged). minijinja has
/// no custom tags, so each becomes a block tag it knows with the same effect, `if true`/`endif`,
/// keeping the `-`/`+` whitespace markers so trim_blocks/lstrip_blocks apply exactly as before.
fn rewrite_generation_tags(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains("generation") {
        return source.into();
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after_open = &rest[start + 2..];
        let marker = after_open.strip_prefix(['-', '+']).map_or(0, |_| 1);
        let body = after_open[marker..].trim_start();
        let keyword = ["endgeneration", "generation"].into_iter().find(|k| {
            body.strip_prefix(k)
                .is_some_and(|tail| tail.trim_start().trim_start_matches(['-', '+']).starts_with("%}"))
        });
        out.push_str(&rest[..start + 2 + marker]);
        rest = &after_open[marker..];
        if let Some(k) = keyword {
            out.push_str(if k == "generation" { " if true" } else { " endif" });
            rest = &body[k.len()..];
        }
    }
    out.push_str(rest);
    out.into()
}

/// `raise_exception(message)`: fail the render with the template's own message, marked (through
/// the error's source) so that [`render_error`] can tell it from engine errors.
fn raise_exception(message: Value) -> std::result::Result<Value, minijinja::Error> {
    let mut text = String::new();
    pycompat::py_str(&mut text, &message, false);
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, text.clone()).with_source(Raised(text)))
}

#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// "kind: detail", minijinja's message without its "(in name:line)" suffix.
fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn render_error(e: minijinja::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(Raised(message)) = s.downcast_ref::<Raised>() {
            return Error::TemplateRaised { line: e.line(), message: message.clone() };
        }
        source = s.source();
    }
    if e.kind() == ErrorKind::SyntaxError {
        return Error::TemplateSyntax { line: e.line(), message: describe(&e) };
    }
    Error::TemplateRender { line: e.line(), message: describe(&e) }
}

/// The special token `key` (a token id) names, or "" when the file does not set it.
fn special_token(meta: &Metadata<'_>, key: &str) -> Result<String> {
    if !meta.contains(key) {
        return Ok(String::new());
    }
    let id = meta.get_u32(key)?;
    let tokens = meta.get_array("tokenizer.ggml.tokens")?;
    let n_vocab = tokens.len();
    let out_of_range = || Error::TokenIdOutOfRange { key: key.into(), id, n_vocab };
    let token = tokens.iter().nth(id as usize).ok_or_else(out_of_range)?;
    let text = token.as_str().ok_or_else(|| Error::WrongType {
        key: "tokenizer.ggml.tokens".into(),
        expected: "array of string",
        found: "array",
    })?;
    Ok(text.to_string())
}

impl ChatTemplate {
    /// Compiles `source`; a template that does not parse is [`Error::TemplateSyntax`] with the line.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new(); // minijinja's builtin filters and tests, some replaced below
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_formatter(pycompat::format);
        env.set_unknown_method_callback(pycompat::unknown_method);
        env.add_filter("tojson", json::tojson);
        env.add_filter("trim", pycompat::trim_filter);
        env.add_filter("string", pycompat::string_filter);
        env.add_test("iterable", pycompat::is_iterable);
        env.add_test("sequence", pycompat::is_sequence);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(source).into_owned())
            .map_err(|e| Error::TemplateSyntax { line: e.line(), message: describe(&e) })?;
        Ok(ChatTemplate {
            env,
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            fallback: false,
        })
    }

    /// The ChatML fallback ([`CHATML_TEMPLATE`]).
    pub fn chatml(bos_token: &str, eos_token: &str) -> ChatTemplate {
        let mut t =
            ChatTemplate::new(CHATML_TEMPLATE, bos_token, eos_token).expect("the ChatML template parses");
        t.fallback = true;
        t
    }

    /// The file's `tokenizer.chat_template`, rendered with the texts of `tokenizer.ggml.bos_token_id`
    /// and `eos_token_id` ("" when unset). A file without a template gets ChatML, and
    /// [`is_fallback`](Self::is_fallback) says so; a template that is present but broken is an
    /// error, not a silent fallback.
    pub fn from_metadata(meta: &Metadata<'_>) -> Result<ChatTemplate> {
        let bos = special_token(meta, "tokenizer.ggml.bos_token_id")?;
        let eos = special_token(meta, "tokenizer.ggml.eos_token_id")?;
        if !meta.contains(CHAT_TEMPLATE_KEY) {
            return Ok(ChatTemplate::chatml(&bos, &eos));
        }
        ChatTemplate::new(meta.get_str(CHAT_TEMPLATE_KEY)?, &bos, &eos)
    }

    /// True when this is the ChatML stand-in for a file that had no template.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders the conversation. A template that refuses it (`raise_exception`) gives
    /// [`Error::TemplateRaised`] with the template's message; other failures
    /// [`Error::TemplateRender`].
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        let template = self.env.get_template(TEMPLATE_NAME).map_err(render_error)?;
        let now = opts.now;
        // A context value rather than an environment global, because it closes over this render's
        // date; templates see no difference (`strftime_now is defined` holds either way).
        let strftime_now = Value::from_function(move |fmt: &str| now.strftime(fmt));
        let ctx = Value::from_pairs([
            ("messages", Value::from_iter(messages.iter().map(Message::to_value))),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
            ("add_generation_prompt", Value::from(opts.add_generation_prompt)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
            ("strftime_now", strftime_now),
        ]);
        template.render(ctx).map_err(render_error)
    }
}

#[cfg(test)]
mod tests;
