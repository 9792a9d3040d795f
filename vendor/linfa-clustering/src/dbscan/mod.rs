mod algorithm;
mod hyperparams;

pub use algorithm::*;
pub use hyperparams::*;
