//! `streamprep serve`: the Preprocessing App's web server (seed 001): the JSON API under
//! `/api/v1` (projects, runs, users, sessions and tokens, the catalogue, the planner; its
//! OpenAPI 3.1 document at `/api/openapi.json`), `/healthz`, `/metrics`, and the pages
//! (`pages/`: server-rendered, live over Server-Sent Events, charts with uPlot).

pub mod access;
pub mod api;
pub mod assets;
pub mod auth;
pub mod history;
pub mod pages;
pub mod projects;
pub mod store;

pub use api::{router, AppState};
