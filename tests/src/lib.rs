//! Shared helpers for aether's cross-crate tests: where the models, goldens and the shared test
//! vectors live. Missing inputs fail loudly with the command that provides them; a test that
//! silently skipped would prove nothing.

use std::path::PathBuf;

pub mod arch_goldens;
pub mod batch;
pub mod gpu;
pub mod logits;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `models/` (or `$AETHER_MODELS_DIR`), filled by `scripts/fetch-models.sh`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("AETHER_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models"))
}

/// The shared test data beside the checkout (`../shared`, or `$AETHER_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("AETHER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().parent().expect("checkout has a parent").join("shared"))
}

/// Committed goldens.
pub fn goldens_dir() -> PathBuf {
    repo_root().join("tests").join("goldens")
}

pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Path of a fetched model file, panicking with how to get it when absent.
pub fn model_path(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(p.is_file(), "{} is missing: run `bash scripts/fetch-models.sh`", p.display());
    p
}

/// The default model's bytes.
pub fn default_model_bytes() -> Vec<u8> {
    std::fs::read(model_path(DEFAULT_MODEL)).expect("read default model")
}

/// Path of a file in `../shared/vocab`.
pub fn vocab_path(name: &str) -> PathBuf {
    let p = shared_dir().join("vocab").join(name);
    assert!(p.is_file(), "{} is missing (the shared test vectors sit beside the checkout)", p.display());
    p
}

/// The test cases of `NAME.gguf.inp`/`.out`, split exactly as test-tokenizer-0.cpp does.
pub fn vocab_cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(vocab_path(&format!("ggml-vocab-{name}.gguf.inp"))).expect("read .inp");
    let out = std::fs::read_to_string(vocab_path(&format!("ggml-vocab-{name}.gguf.out"))).expect("read .out");
    const SEP: &str = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(SEP) {
            Some(k) => {
                inputs.push(inp[pos..pos + k].to_string());
                pos += k + SEP.len();
            }
            None => {
                inputs.push(inp[pos..].to_string());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> =
        out.lines().map(|l| l.split_whitespace().map(|t| t.parse().expect("id in .out")).collect()).collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp has {} cases, .out {}",
        inputs.len(),
        outputs.len()
    );
    assert!(inputs.len() > 40, "{name}: only {} cases", inputs.len());
    inputs.into_iter().zip(outputs).collect()
}

/// The SHA-256 digest of `data` as 64 lowercase hex digits.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}
