//! Federated learning on real non-IID data: data sets and partitioners, a small CNN training
//! stack, FedAvg, FedProx, MOON and FedProc rounds, secure aggregation, and plots.

pub mod cnn;
pub mod data;
pub mod local_loss;
pub mod loss;
pub mod model;
pub mod partition;
pub mod plot;
pub mod rounds;
pub mod secagg;
pub mod trace;
