//! The routes of the HTTP API, each mapped onto one API subject.

use crate::body::{error, read};
use crate::Gateway;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use keel_protocol::{subjects as s, ErrorCode, ReplyStatus};
use serde_json::json;

/// Registers every route on an actix-web app.
pub fn configure(gateway: Gateway) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(gateway))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/status", web::get().to(status))
            .service(collection(
                "/v1/locations",
                s::LOCATIONS_CREATE,
                s::LOCATIONS_LIST,
            ))
            .service(member("/v1/locations/{id}", s::LOCATIONS_GET))
            .service(collection(
                "/v1/channels",
                s::CHANNELS_CREATE,
                s::CHANNELS_LIST,
            ))
            .service(member("/v1/channels/{id}", s::CHANNELS_GET))
            .service(collection("/v1/skus", s::SKUS_CREATE, s::SKUS_LIST))
            .service(member("/v1/skus/{id}", s::SKUS_GET))
            .service(post_body("/v1/inventory/receipts", s::INVENTORY_RECEIPT))
            .service(post_body("/v1/inventory/adjustments", s::INVENTORY_ADJUST))
            .service(from_path(
                "/v1/inventory/{sku}",
                web::get(),
                s::INVENTORY_GET,
            ))
            .service(from_path(
                "/v1/inventory/{sku}/{location}",
                web::get(),
                s::INVENTORY_POSITION,
            ))
            .service(from_path(
                "/v1/inventory/{sku}/{location}/ledger",
                web::get(),
                s::INVENTORY_LEDGER,
            ))
            .service(from_path(
                "/v1/inventory/{sku}/{location}/reservations",
                web::get(),
                s::INVENTORY_RESERVATIONS,
            ))
            .service(from_path(
                "/v1/inventory/{sku}/{location}/backorders",
                web::get(),
                s::INVENTORY_BACKORDERS,
            ))
            .service(post_body("/v1/orders", s::ORDERS_PLACE))
            .service(member("/v1/orders/{id}", s::ORDERS_GET))
            .service(from_path(
                "/v1/orders/{id}/cancel",
                web::post(),
                s::ORDERS_CANCEL,
            ))
            .service(member("/v1/fulfillments/{id}", s::FULFILLMENTS_GET))
            .service(post_body("/v1/holds", s::HOLDS_PLACE))
            .service(member("/v1/holds/{id}", s::HOLDS_GET))
            .service(from_path(
                "/v1/holds/{id}/release",
                web::post(),
                s::HOLDS_RELEASE,
            ))
            .service(
                web::resource("/v1/fulfillments/{id}/{step}")
                    .route(web::post().to(confirm))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(|| async {
                error(ErrorCode::NotFound, "no such route")
            }));
    }
}

fn json_body(value: serde_json::Value) -> Bytes {
    Bytes::from(value.to_string())
}

async fn method_not_allowed() -> HttpResponse {
    error(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// `POST` creates from the body, `GET` lists.
fn collection(path: &str, create: &'static str, list: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(web::post().to(
            move |g: web::Data<Gateway>, payload: web::Payload| async move {
                match read(payload).await {
                    Ok(body) => forward(&g, create, body).await,
                    Err(response) => response,
                }
            },
        ))
        .route(web::get().to(move |g: web::Data<Gateway>| async move {
            forward(&g, list, json_body(json!({}))).await
        }))
        .default_service(web::to(method_not_allowed))
}

/// `GET` one resource by the `{id}` in its path.
fn member(path: &str, get: &'static str) -> actix_web::Resource {
    from_path(path, web::get(), get)
}

/// A route whose request body is made of its path and query parameters (`/v1/orders/{id}` asks
/// with `{"id": …}`); path parameters win over query parameters of the same name.
fn from_path(path: &str, method: actix_web::Route, subject: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(
            method.to(move |g: web::Data<Gateway>, req: HttpRequest| async move {
                // Query parameters (e.g. a ledger page's `from` and `limit`) first, so that a
                // path parameter of the same name overwrites them.
                let query = req
                    .query_string()
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(name, value)| (name.to_owned(), json!(value)));
                let path = req
                    .match_info()
                    .iter()
                    .map(|(name, value)| (name.to_owned(), json!(value)));
                let params: serde_json::Map<String, serde_json::Value> =
                    query.chain(path).collect();
                forward(&g, subject, json_body(serde_json::Value::Object(params))).await
            }),
        )
        .default_service(web::to(method_not_allowed))
}

/// `POST` with a JSON body.
fn post_body(path: &str, subject: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(web::post().to(
            move |g: web::Data<Gateway>, payload: web::Payload| async move {
                match read(payload).await {
                    Ok(body) => forward(&g, subject, body).await,
                    Err(response) => response,
                }
            },
        ))
        .default_service(web::to(method_not_allowed))
}

async fn confirm(g: web::Data<Gateway>, p: web::Path<(String, String)>) -> HttpResponse {
    let (id, step) = p.into_inner();
    if !matches!(step.as_str(), "picked" | "packed" | "shipped" | "delivered") {
        return error(
            ErrorCode::NotFound,
            "steps are picked, packed, shipped and delivered",
        );
    }
    forward(
        &g,
        s::FULFILLMENTS_CONFIRM,
        json_body(json!({ "id": id, "step": step })),
    )
    .await
}

/// Whether a request sent to a partition's owner found nobody serving the partition there now
/// (no subscriber, or a node that just handed it off): the nodes then forward it, waiting out
/// the hand-off. Every request is idempotent, so asking again is harmless.
fn is_unserved(reply: &Result<keel_bus::Message, keel_bus::Error>) -> bool {
    match reply {
        Err(keel_bus::Error::NoResponders(_)) => true,
        Ok(msg) => {
            ReplyStatus::from_headers(&msg.headers) == ReplyStatus::Error(ErrorCode::Unavailable)
        }
        Err(_) => false,
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(g: web::Data<Gateway>) -> HttpResponse {
    if (g.ready)() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "starting" }))
    }
}

async fn status(g: web::Data<Gateway>) -> HttpResponse {
    HttpResponse::Ok().json((g.status)())
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(keel_telemetry::metrics::render())
}

/// Asks the node serving the request's entity (or any node) and turns its reply into an HTTP
/// response.
async fn forward(g: &Gateway, subject: &str, body: Bytes) -> HttpResponse {
    let mut headers = keel_bus::Headers::new();
    keel_telemetry::inject(&tracing::Span::current(), &mut headers);
    let owner = g.owner.as_ref().and_then(|owner| owner(subject, &body));
    let reply = match owner {
        Some(owner) => {
            let direct = g
                .bus
                .request(&owner, headers.clone(), body.clone(), g.timeout)
                .await;
            if is_unserved(&direct) {
                crate::metrics::detour(subject);
                g.bus.request(subject, headers, body, g.timeout).await
            } else {
                direct
            }
        }
        None => g.bus.request(subject, headers, body, g.timeout).await,
    };
    match reply {
        Ok(msg) => {
            let replied = ReplyStatus::from_headers(&msg.headers);
            let status = match replied {
                ReplyStatus::Ok => 200,
                ReplyStatus::Created => 201,
                ReplyStatus::Error(code) => code.http_status(),
            };
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            let response = HttpResponse::build(status)
                .content_type("application/json")
                .body(msg.payload);
            match replied {
                ReplyStatus::Error(code) => crate::metrics::tag(response, code),
                _ => response,
            }
        }
        Err(keel_bus::Error::PayloadTooLarge { max, .. }) => error(
            ErrorCode::PayloadTooLarge,
            &format!("the request exceeds {max} bytes"),
        ),
        Err(e) => {
            tracing::warn!(subject, error = %e, "no answer from a node");
            error(ErrorCode::Unavailable, &format!("no node answered: {e}"))
        }
    }
}
