//! Reading request bodies with a size limit and answering in Keel's JSON error shape.

use crate::MAX_BODY_BYTES;
use actix_web::{web, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use keel_protocol::ErrorCode;

/// An error response in the shape clients expect.
pub(crate) fn error(code: ErrorCode, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(code.http_status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let response = HttpResponse::build(status)
        .content_type("application/json")
        .body(keel_protocol::error_body(code, message));
    crate::metrics::tag(response, code)
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
pub(crate) async fn read(mut payload: web::Payload) -> Result<Bytes, HttpResponse> {
    let too_large = || {
        let message = format!("the body exceeds {MAX_BODY_BYTES} bytes");
        error(ErrorCode::PayloadTooLarge, &message)
    };
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| error(ErrorCode::MalformedRequest, &e.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
