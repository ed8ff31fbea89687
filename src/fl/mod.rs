//! Federated learning: data sets, non-IID partitioners (and, next, the CNN stack, FedAvg,
//! FedProx, MOON and FedProc).

pub mod data;
pub mod model;
pub mod nn;
pub mod partition;
pub mod rounds;
pub mod secagg;
