//! The model layer: what a GGUF file describes (architecture, hyper-parameters, weights by name),
//! independent of where it runs. The CPU forward pass in `crate::cpu` is the reference every GPU
//! kernel is tested against.

mod config;
mod weights;

pub use config::{Arch, Config, FfnAct, RopeKind, Swa};
pub use weights::{LayerSet, LayerWeights, Layout, MatrixPart, QTensor, VectorPart, WeightSet, Weights};

use crate::error::Result;
use crate::gguf::Gguf;

/// A loaded model: its description and its weights, borrowed from the file's bytes.
pub struct Model<'a> {
    pub config: Config,
    pub weights: Weights<'a>,
}

impl<'a> Model<'a> {
    pub fn from_gguf(g: &Gguf<'a>) -> Result<Model<'a>> {
        let config = Config::from_metadata(g.metadata())?;
        let weights = Weights::from_gguf(g, &config)?;
        Ok(Model { config, weights })
    }
}

#[cfg(test)]
mod tests;
