//! The axum example's router.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// A user, as the JSON route returns it.
#[derive(Debug, Serialize)]
pub struct User {
    /// From the path.
    pub id: u64,
    /// Made up from the id.
    pub name: String,
}

async fn user(Path(id): Path<u64>) -> Json<User> {
    Json(User {
        id,
        name: format!("user-{id}"),
    })
}

/// `GET /` answers `Hello, World!`; `GET /users/{id}` answers the user as JSON (a non-numeric
/// id is a 400).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/users/{id}", get(user))
}
