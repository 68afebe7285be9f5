//! aether-core's one error type. Variants name what was wrong and where (key, tensor, byte offset);
//! nothing a file, request or user supplies can make this crate panic instead of returning one.

use crate::quant::GgmlType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    // ---------------------------------------------------------------- GGUF container
    // Keys and tensor names in these variants are cut to 256 bytes (a key may be up to 1 GiB).
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error("GGUF version {version} is not supported (only 2 and 3)")]
    UnsupportedVersion { version: u32 },
    #[error("big-endian GGUF (version {version} byte-swapped) is not supported")]
    BigEndian { version: u32 },
    #[error("GGUF header truncated: {what} at byte {offset} needs {need} bytes, the file has {have}")]
    Truncated { what: &'static str, offset: u64, need: u64, have: u64 },
    #[error("GGUF header claims {count} tensors but only {remaining} bytes remain")]
    TooManyTensors { count: u64, remaining: u64 },
    #[error("GGUF header claims {count} metadata entries but only {remaining} bytes remain")]
    TooManyKv { count: u64, remaining: u64 },
    #[error("string at byte {offset} claims {len} bytes but only {remaining} remain")]
    StringPastEnd { offset: u64, len: u64, remaining: u64 },
    #[error("string at byte {offset} claims {len} bytes, over the 1 GiB limit")]
    StringTooLarge { offset: u64, len: u64 },
    #[error("array `{key}` claims {len} elements but only {remaining} bytes remain")]
    ArrayPastEnd { key: String, len: u64, remaining: u64 },
    #[error("array `{key}` claims {len} elements, over the 1 Gi limit")]
    ArrayTooLarge { key: String, len: u64 },
    #[error("array `{key}` nests deeper than {max} levels")]
    NestingTooDeep { key: String, max: usize },
    #[error("metadata key at byte {offset} is not valid UTF-8")]
    KeyNotUtf8 { offset: u64 },
    #[error("metadata value of `{key}` is not valid UTF-8")]
    ValueNotUtf8 { key: String },
    #[error("tensor name at byte {offset} is not valid UTF-8")]
    TensorNameNotUtf8 { offset: u64 },
    #[error("metadata key at byte {offset} is empty")]
    EmptyKey { offset: u64 },
    #[error("metadata key `{key}` has unknown value type {type_id}")]
    UnknownValueType { key: String, type_id: u32 },
    #[error("metadata key `{key}` holds bool byte {value}, expected 0 or 1")]
    InvalidBool { key: String, value: u8 },
    #[error("metadata key `{key}` appears twice")]
    DuplicateKey { key: String },
    #[error("tensor `{name}` appears twice")]
    DuplicateTensor { name: String },
    #[error("general.alignment must be a u32, found {found}")]
    AlignmentType { found: &'static str },
    #[error("general.alignment is {value}; it must be a non-zero power of two")]
    BadAlignment { value: u64 },
    #[error("tensor `{name}` has {n_dims} dimensions; 1 to 4 are allowed")]
    BadRank { name: String, n_dims: u32 },
    #[error("tensor `{name}` has a zero dimension: {dims:?}")]
    ZeroDim { name: String, dims: Vec<u64> },
    #[error("tensor `{name}` element count overflows: {dims:?}")]
    ElementCountOverflow { name: String, dims: Vec<u64> },
    #[error("tensor `{name}` byte size overflows")]
    ByteSizeOverflow { name: String },
    #[error("tensor `{name}` has unknown type id {type_id}")]
    UnknownTensorType { name: String, type_id: u32 },
    #[error("tensor `{name}` row length {ne0} is not a multiple of {ty}'s block size {block}")]
    RowNotBlockMultiple { name: String, ne0: u64, ty: GgmlType, block: usize },
    #[error("tensor `{name}` offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor { name: String, offset: u64, alignment: u64 },
    #[error(
        "tensor `{name}` starts at data offset {offset}, outside the file's {data_len}-byte data section"
    )]
    TensorOutOfBounds { name: String, offset: u64, data_len: u64 },
    #[error("tensors `{first}` and `{second}` overlap in the data section")]
    TensorsOverlap { first: String, second: String },
    #[error("data section truncated: tensor `{name}` ends at byte {need} of the file, which has {have}")]
    DataTruncated { name: String, need: u64, have: u64 },

    // ---------------------------------------------------------------- GGUF lookups
    #[error("metadata key `{key}` is missing")]
    MissingKey { key: String },
    #[error("metadata key `{key}` is {found}, expected {expected}")]
    WrongType { key: String, expected: &'static str, found: &'static str },
    #[error("tensor `{name}` is missing")]
    MissingTensor { name: String },
    #[error("write failed: {0}")]
    Io(String),

    // ---------------------------------------------------------------- quant formats
    #[error("tensor type {ty} is not supported for {op}")]
    UnsupportedType { ty: GgmlType, op: &'static str },
    #[error("{ty} data of {len} bytes is not a whole number of {block_bytes}-byte blocks")]
    PartialBlock { ty: GgmlType, len: usize, block_bytes: usize },
    #[error("{what}: expected {expected} elements, got {got}")]
    LengthMismatch { what: &'static str, expected: usize, got: usize },
    #[error("{len} values are not a whole number of {ty} blocks of {block_elems}")]
    PartialBlockElements { ty: GgmlType, len: usize, block_elems: usize },

    // ---------------------------------------------------------------- model
    #[error("architecture `{arch}` is not supported (supported: llama, qwen2, qwen3, phi3, gemma3)")]
    UnsupportedArchitecture { arch: String },
    #[error("hyper-parameter `{key}` is invalid or not supported")]
    InvalidHyperParameter { key: String },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape { name: String, expected: Vec<u64>, found: Vec<u64> },
    #[error("context of {n_ctx} tokens is full")]
    ContextFull { n_ctx: usize },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("generation step with no evaluated token to sample from (begin a prompt first)")]
    NothingSampled,

    // ---------------------------------------------------------------- model architectures
    #[error("`{key}` is `{value}`; aether supports rope scaling none, linear and longrope")]
    UnsupportedRopeScaling { key: String, value: String },
    /// llama.cpp refuses a file with tensors its architecture does not create; so does aether,
    /// rather than run a model without a piece of it.
    #[error("tensor `{name}` is not part of a {arch} model (unsupported feature or wrong architecture)")]
    UnexpectedTensor { name: String, arch: &'static str },

    // ---------------------------------------------------------------- tokenizer
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("tokenizer.ggml.model `{model}` is not supported (llama and gpt2 are)")]
    UnsupportedTokenizerModel { model: String },
    #[error("tokenizer.ggml.pre `{pre}` is not a pre-tokenizer llama.cpp knows")]
    UnknownPreTokenizer { pre: String },
    #[error("tokenizer.ggml.pre `{pre}` is known to llama.cpp but not implemented yet")]
    UnsupportedPreTokenizer { pre: String },
    #[error("`{key}` has {len} entries but tokenizer.ggml.tokens has {n_vocab}")]
    VocabArrayTooShort { key: &'static str, len: usize, n_vocab: usize },
    #[error("token id {id} is out of range for a vocabulary of {n_vocab}")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    #[error("the vocabulary asks for a {what} token but has none")]
    MissingSpecialToken { what: &'static str },

    // ---------------------------------------------------------------- chat templates
    /// The template does not parse (reported when it is compiled, before any render).
    #[error("chat template syntax error{}: {message}", at_line(*.line))]
    TemplateSyntax { line: Option<usize>, message: String },
    /// The template called `raise_exception(message)`: it refuses this conversation (roles that do
    /// not alternate, an unsupported system message, …). `message` is the template's own text.
    #[error("chat template raised an exception{}: {message}", at_line(*.line))]
    TemplateRaised { line: Option<usize>, message: String },
    /// Rendering failed for another reason: an undefined value used as a map, a bad filter
    /// argument, the instruction budget spent, ….
    #[error("chat template render error{}: {message}", at_line(*.line))]
    TemplateRender { line: Option<usize>, message: String },
    /// `tokenizer.ggml.bos_token_id` or `eos_token_id` names no token of the vocabulary.
    #[error("metadata key `{key}` is token id {id}, but the vocabulary has {n_vocab} tokens")]
    TokenIdOutOfRange { key: String, id: u32, n_vocab: usize },
    #[error("invalid date {year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} for strftime_now")]
    InvalidDate { year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8 },

    // ---------------------------------------------------------------- gpu
    // wgpu reports most failures asynchronously (an uncaptured-error handler, a device-lost
    // callback); `gpu::Gpu` records them and returns them from its next fallible call.
    #[error("no GPU adapter: {reason}")]
    NoAdapter { reason: String },
    #[error("GPU `{adapter}` refused a device: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    #[error("GPU device lost ({reason}): {message}")]
    DeviceLost { reason: String, message: String },
    #[error("GPU out of memory{}", in_context(context))]
    GpuOutOfMemory { context: String },
    #[error("GPU validation error{}: {message}", in_context(context))]
    GpuValidation { context: String, message: String },
    #[error("GPU internal error{}: {message}", in_context(context))]
    GpuInternal { context: String, message: String },
    #[error("GPU work did not finish within {seconds} s{}", in_context(context))]
    GpuTimeout { context: String, seconds: f64 },
    #[error("GPU buffer read-back failed{}: {message}", in_context(context))]
    GpuReadback { context: String, message: String },
    #[error(
        "tensor `{name}`: one row is {row_bytes} bytes, over the GPU's {max_binding}-byte storage binding limit"
    )]
    GpuRowTooLarge { name: String, row_bytes: u64, max_binding: u64 },
    #[error("tensor `{name}` ({bytes} bytes) does not fit the GPU: {why}")]
    GpuTensorTooLarge { name: String, bytes: u64, why: String },

    // ---------------------------------------------------------------- gpu element-wise kernels
    /// A launcher was given a shape its kernel cannot run (an odd KV width, an odd head size).
    #[error("GPU kernel `{kernel}`: {why}")]
    GpuKernelShape { kernel: &'static str, why: String },
    /// Exact numerics ([`GpuOptions::exact`](crate::gpu::GpuOptions)) cover part of what the
    /// fast kernels do.
    #[error(
        "exact GPU numerics do not cover {what} (they take Q4_0, Q4_1 and Q8_0 weights of llama, qwen2 and phi3 models)"
    )]
    ExactUnsupported { what: String },
    // ---------------------------------------------------------------- gpu attention
    #[error("GPU attention: {why}")]
    GpuAttention { why: String },

    // ---------------------------------------------------------------- batched evaluation
    #[error("sequence {seq} is out of range for a pool of {n_seq}")]
    SeqOutOfRange { seq: usize, n_seq: usize },
    #[error("sequence {seq} appears twice in one batch")]
    SeqTwiceInBatch { seq: usize },

    // ---------------------------------------------------------------- streaming weight loads
    /// A streamed load ended before every byte of a tensor arrived.
    #[error("tensor `{name}` incomplete: {got} of its {len} bytes (file bytes {start}..{end}) arrived")]
    TensorIncomplete { name: String, start: u64, end: u64, len: u64, got: u64 },
    /// Bytes pushed to a streamed load out of order.
    #[error("stream out of order: got bytes at offset {got}, expected offset {expected}")]
    StreamOrder { expected: u64, got: u64 },
}

/// " while CONTEXT" when the GPU error has one.
fn in_context(context: &str) -> String {
    if context.is_empty() { String::new() } else { format!(" while {context}") }
}

/// " at line N" when the template line is known.
fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}
