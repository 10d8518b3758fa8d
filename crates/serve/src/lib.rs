//! `streamprep serve`: the Preprocessing App's web server (seed 001). This first part serves
//! what needs no store and changes nothing: the step and connector catalogue with their
//! options, the check of a project spec (every field, with an error per field), the health
//! check, the metrics of the runs it hosts, and the OpenAPI 3.1 document of all of it at
//! `/api/openapi.json`. Projects, runs, users and sessions come next.

pub mod access;
pub mod api;
pub mod assets;
pub mod auth;
pub mod projects;
pub mod store;

pub use api::{router, AppState};
