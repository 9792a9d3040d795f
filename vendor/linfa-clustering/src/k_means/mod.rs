mod algorithm;
mod errors;
mod hyperparams;
mod init;

pub use algorithm::*;
pub use errors::*;
pub use hyperparams::*;
pub use init::*;
