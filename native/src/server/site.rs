//! The demo site (`www/`, as `scripts/build-web.sh` assembles it in `www/dist/`) at `/`, so
//! `aether serve` alone gives a chat page, and the served model at `/models/<file name>`, where
//! the page looks for it. Static files go through tower-http's `ServeDir`/`ServeFile`: they
//! refuse paths that climb out of the folder, answer Range requests (the page downloads the model
//! in parts) and conditional requests, and set content types.
//!
//! The site is public like `/health`; the model file sits behind `--api-key` like the API.

use std::path::{Path, PathBuf};

/// What the server serves besides the API.
#[derive(Clone, Debug)]
pub struct Site {
    /// Served at `/` (`index.html` for folders).
    pub dir: PathBuf,
    /// Served at `/models/<its file name>`.
    pub model: Option<PathBuf>,
}

/// The checkout's built site, when there is one: `www/dist` under the working directory or
/// under the checkout the binary was built in (`target/{debug,release}/aether`).
pub fn default_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("www/dist")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(root) = exe.ancestors().nth(3)
    {
        candidates.push(root.join("www/dist"));
    }
    candidates.into_iter().find(|d| d.join("index.html").is_file())
}

/// `/models/<file name>` for `model`, or `None` when the name cannot be a URL path segment.
pub fn model_route(model: &Path) -> Option<String> {
    let name = model.file_name()?.to_str()?;
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    plain.then(|| format!("/models/{name}"))
}
