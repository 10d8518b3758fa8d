//! The distributed method (`--method queue`): the coordinator sends each message as one task
//! (the chain spec and the rows, or Arrow IPC for columnar input) to a Redis Stream; `streamprep
//! worker` processes, any number and on any host, take tasks through one consumer group, run
//! the whole chain and write the result (the encoded bytes, and the output batch as Arrow IPC
//! when the coordinator needs it) to the coordinator's reply stream; the coordinator drops
//! duplicates and delivers in input order.

pub mod coordinator;
mod keyed;
pub mod redis_io;
pub mod resp;
pub mod wire;
pub mod worker;

pub use coordinator::{Queue, MAX_TASK_BYTES};
pub use worker::{WorkerConfig, WorkerStats};
