//! The streaming model loader: a GGUF file arrives as a sequence of chunks (a `fetch` body, a
//! Cache API entry, a local `File`), header first.
//!
//! Two phases. **Header**: chunks accumulate until `parse_header` can read the whole header (it
//! answers how many bytes it needs, so the prefix is re-parsed only once that many are in). The
//! header is then checked at once, before the weights download: the architecture and
//! hyper-parameters (`Config`), the tokenizer and the chat template — an unsupported or malformed
//! model fails after a few hundred kB, not after the whole file. **Body**: every later byte goes to
//! the [`Sink`] chosen from the header.
//!
//! [`Sink`] is THE switch point between the engines. The CPU engine computes on the file's bytes
//! in place, so its sink keeps the whole file in wasm memory (reserved once, exactly, from the
//! header: wasm memory never shrinks, so a doubling `Vec` would waste up to half). The GPU engine
//! (when the loader is given a device) routes each tensor's byte range to its GPU buffer as it
//! arrives ([`GpuModelBuilder`]) and keeps only one chunk and the small f32 vectors in wasm
//! memory; the header prefix is dropped once parsed.
//!
//! Chunks are written by a `fill` callback straight into their destination, so the wasm side
//! copies each byte once (`Uint8Array::copy_to`), and natively the tests push plain slices.

use aether_core::chat_template::ChatTemplate;
use aether_core::gguf::{HeaderParse, parse_header};
use aether_core::gpu::{Gpu, GpuModelBuilder};
use aether_core::model::Config;
use aether_core::tokenizer::Tokenizer;
use sha2::{Digest, Sha256};

use crate::error::{Kind, Result, WebError};

/// What the header told us, owned (the header itself borrows the prefix bytes).
pub struct Plan {
    pub architecture: String,
    pub name: String,
    pub config: Config,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub n_tensors: usize,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// The smallest valid file: the end of the last tensor (final padding may be absent).
    pub min_len: u64,
    /// Bytes the sink keeps: the file up to its padded end (or the announced total, if smaller).
    pub keep_len: u64,
}

/// Where the bytes after the header go.
pub enum Sink {
    /// CPU engine: the whole file, header included, in one exactly-reserved buffer.
    Cpu { bytes: Vec<u8> },
    /// GPU engine: each tensor's bytes written to its GPU buffers as they stream past.
    Gpu { gpu: &'static Gpu, builder: Box<GpuModelBuilder<'static>> },
}

enum Phase {
    Header {
        buf: Vec<u8>,
        need: u64,
    },
    Body {
        plan: Box<Plan>,
        sink: Sink,
    },
    /// After an error: every later call repeats it.
    Failed(WebError),
}

pub struct Loader {
    /// The file's length when the source announced it (Content-Length, Blob size).
    total: Option<u64>,
    received: u64,
    phase: Phase,
    hasher: Option<Sha256>,
    /// The device the GPU engine runs on, if the worker has one.
    gpu: Option<&'static Gpu>,
}

/// The largest header accepted when the total is unknown (real headers are a few MB: the
/// vocabulary and merges dominate).
const MAX_HEADER: u64 = 256 << 20;

impl Loader {
    pub fn new(total: Option<u64>, hash: bool) -> Loader {
        Loader::with_gpu(total, hash, None)
    }

    /// A loader for the GPU engine on `gpu` (the CPU engine's when `None`).
    pub fn with_gpu(total: Option<u64>, hash: bool, gpu: Option<&'static Gpu>) -> Loader {
        Loader {
            total,
            received: 0,
            phase: Phase::Header { buf: Vec::new(), need: 0 },
            hasher: hash.then(Sha256::new),
            gpu,
        }
    }

    /// Announces the file's length once the source knows it; only before the first chunk.
    pub fn set_total(&mut self, total: u64) -> Result<()> {
        if self.received > 0 {
            return Err(WebError::new(Kind::Internal, "the total must be set before the first chunk"));
        }
        self.total = Some(total);
        Ok(())
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// The device the GPU engine will run on (`None`: the CPU engine).
    pub fn gpu(&self) -> Option<&'static Gpu> {
        self.gpu
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The header's findings, once it has been parsed.
    pub fn plan(&self) -> Option<&Plan> {
        match &self.phase {
            Phase::Body { plan, .. } => Some(plan),
            _ => None,
        }
    }

    /// Takes the next `n` bytes of the file: `fill` writes them into the slice it is given.
    pub fn push_with(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        if let Phase::Failed(e) = &self.phase {
            return Err(e.clone());
        }
        let r = self.push_inner(n, fill);
        if let Err(e) = &r {
            self.phase = Phase::Failed(e.clone());
        }
        r
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.push_with(chunk.len(), |dst| dst.copy_from_slice(chunk))
    }

    fn push_inner(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        let offset = self.received;
        self.received += n as u64;
        match &mut self.phase {
            Phase::Header { buf, .. } => {
                let at = buf.len();
                buf.try_reserve(n).map_err(|_| oom(offset + n as u64))?;
                buf.resize(at + n, 0);
                fill(&mut buf[at..]);
                if let Some(h) = &mut self.hasher {
                    h.update(&buf[at..]);
                }
                self.try_header()
            }
            Phase::Body { plan, sink } => match sink {
                Sink::Cpu { bytes } => {
                    // Bytes past the file's end (a server that pads) are counted, not kept.
                    let keep = (plan.keep_len.saturating_sub(offset) as usize).min(n);
                    let at = bytes.len();
                    if keep == n {
                        bytes.resize(at + n, 0);
                        fill(&mut bytes[at..]);
                    } else {
                        let mut tmp = vec![0; n];
                        fill(&mut tmp);
                        bytes.extend_from_slice(&tmp[..keep]);
                    }
                    if let Some(h) = &mut self.hasher {
                        h.update(&bytes[at..]);
                    }
                    Ok(())
                }
                Sink::Gpu { builder, .. } => {
                    let keep = (plan.keep_len.saturating_sub(offset) as usize).min(n);
                    let mut chunk = Vec::new();
                    chunk.try_reserve_exact(n).map_err(|_| oom(n as u64))?;
                    chunk.resize(n, 0);
                    fill(&mut chunk);
                    if let Some(h) = &mut self.hasher {
                        h.update(&chunk[..keep]);
                    }
                    Ok(builder.push(offset, &chunk)?)
                }
            },
            Phase::Failed(e) => Err(e.clone()),
        }
    }

    /// Parses the header once enough bytes are in; on success moves to the body phase.
    fn try_header(&mut self) -> Result<()> {
        let Phase::Header { buf, need } = &mut self.phase else { return Ok(()) };
        if (buf.len() as u64) < *need {
            return Ok(());
        }
        let (plan, builder) = match parse_header(buf, self.total)? {
            HeaderParse::NeedBytes(n) => {
                if self.total.is_none() && n > MAX_HEADER {
                    return Err(WebError::new(
                        Kind::ModelFormat,
                        format!("GGUF header needs over {n} bytes, past the {MAX_HEADER}-byte limit"),
                    ));
                }
                *need = n;
                return Ok(());
            }
            HeaderParse::Complete(h) => {
                let config = Config::from_metadata(&h.metadata)?;
                let tokenizer = Tokenizer::from_metadata(&h.metadata)?;
                let template = ChatTemplate::from_metadata(&h.metadata)?;
                let min_len = h.tensors.iter().map(|t| h.tensor_range(t).end).max().unwrap_or(h.data_offset);
                let keep_len = self.total.map_or(h.file_len(), |t| t.min(h.file_len())).max(min_len);
                let builder = match self.gpu {
                    Some(gpu) => Some((gpu, Box::new(GpuModelBuilder::new(gpu, &h, config.clone())?))),
                    None => None,
                };
                let plan = Plan {
                    architecture: h.metadata.get_str("general.architecture").unwrap_or("").to_string(),
                    name: h.metadata.get_str("general.name").unwrap_or("").to_string(),
                    config,
                    tokenizer,
                    template,
                    n_tensors: h.tensors.len(),
                    data_offset: h.data_offset,
                    min_len,
                    keep_len,
                };
                (plan, builder)
            }
        };
        // The switch point: the GPU engine takes the bytes so far and keeps none; the CPU engine
        // keeps the whole file.
        if let Some((gpu, mut builder)) = builder {
            builder.push(0, buf)?;
            self.phase = Phase::Body { plan: Box::new(plan), sink: Sink::Gpu { gpu, builder } };
            return Ok(());
        }
        let mut bytes = std::mem::take(buf);
        let extra = plan.keep_len.saturating_sub(bytes.len() as u64);
        let extra = usize::try_from(extra).map_err(|_| oom(plan.keep_len))?;
        bytes.try_reserve_exact(extra).map_err(|_| oom(plan.keep_len))?;
        bytes.truncate(plan.keep_len as usize);
        self.phase = Phase::Body { plan: Box::new(plan), sink: Sink::Cpu { bytes } };
        Ok(())
    }

    /// The SHA-256 of every byte pushed so far, in hex (`None` unless asked for at `new`).
    pub fn sha256_hex(&self) -> Option<String> {
        let digest = self.hasher.clone()?.finalize();
        Some(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The stream has ended: checks it held the whole file and hands over what the engine needs.
    pub fn finish(self) -> Result<(Box<Plan>, Sink)> {
        match self.phase {
            Phase::Failed(e) => Err(e),
            Phase::Header { buf, need } => Err(WebError::new(
                Kind::ModelFormat,
                format!(
                    "GGUF header truncated: the stream ended after {} bytes, the header needs {}",
                    buf.len(),
                    need.max(buf.len() as u64 + 1)
                ),
            )),
            Phase::Body { plan, sink } => {
                if self.received < plan.min_len {
                    return Err(WebError::new(
                        Kind::ModelFormat,
                        format!(
                            "GGUF data truncated: the stream ended after {} bytes, the tensors end at byte {}",
                            self.received, plan.min_len
                        ),
                    ));
                }
                Ok((plan, sink))
            }
        }
    }
}

fn oom(bytes: u64) -> WebError {
    WebError::new(Kind::OutOfMemory, format!("cannot allocate {bytes} bytes of wasm memory for the model"))
}

#[cfg(test)]
mod tests;
