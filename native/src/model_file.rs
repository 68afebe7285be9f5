//! Model files on disk: memory-mapped, so a multi-gigabyte GGUF costs no read and no copy, and
//! where to find the default model when `-m` is left out.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use memmap2::Mmap;

/// The default model: SmolLM2-135M-Instruct, Q4_1, fetched by `scripts/fetch-models.sh`.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// A read-only memory map of a model file.
pub struct MappedFile {
    map: Mmap,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<MappedFile> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the map is read-only and private to this process. Another process truncating the
        // file while it is mapped would fault; that is the standard caveat of mapping model files
        // (llama.cpp has the same), and the alternative is reading gigabytes into memory.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        Ok(MappedFile { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Reads every page once so the first token does not pay for faulting the weights in, with a
    /// progress bar on stderr for files large enough to take a noticeable time.
    pub fn page_in(&self) {
        const PAGE: usize = 4096;
        const CHUNK: usize = 64 << 20;
        let bar = (self.map.len() >= PROGRESS_FROM).then(|| {
            let style =
                ProgressStyle::with_template("loading [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(self.map.len() as u64).with_style(style)
        });
        let mut sum = 0u8;
        for chunk in self.map.chunks(CHUNK) {
            sum = chunk.iter().step_by(PAGE).fold(sum, |a, &b| a.wrapping_add(b));
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        }
        std::hint::black_box(sum);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
}

/// Files from this size on get a loading progress bar.
const PROGRESS_FROM: usize = 512 << 20;

/// `-m` if given; otherwise the default model from `$AETHER_MODELS_DIR`, `./models`, or the
/// `models/` folder of the checkout the binary was built in.
pub fn resolve(model: Option<&Path>) -> Result<PathBuf> {
    if let Some(m) = model {
        return Ok(m.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("AETHER_MODELS_DIR") {
        candidates.push(PathBuf::from(dir).join(DEFAULT_MODEL));
    }
    candidates.push(PathBuf::from("models").join(DEFAULT_MODEL));
    if let Ok(exe) = std::env::current_exe() {
        // target/{debug,release}/aether -> <checkout>/models
        if let Some(root) = exe.ancestors().nth(3) {
            candidates.push(root.join("models").join(DEFAULT_MODEL));
        }
    }
    candidates.iter().find(|p| p.is_file()).cloned().with_context(|| {
        format!("no model given and the default model {DEFAULT_MODEL} was not found; run `bash scripts/fetch-models.sh` or pass -m MODEL.gguf")
    })
}
