//! A real HTTP server on loopback standing in for an affiliate's tracker or
//! an ad platform's API: it records every request it gets (method, path,
//! headers, body) and answers as the test tells it.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio::sync::Notify;

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status, empty body.
    Status(u16),
    /// This status with this JSON body (a platform's error, TikTok's code).
    Json(u16, String),
    /// A redirect to this location.
    Redirect(String),
    /// No answer until [`Receiver::release`].
    Hold,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query, as sent.
    pub uri: String,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `GET`, `POST`…
    pub method: String,
    /// Every header, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub body: Vec<u8>,
}

impl Received {
    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        let query = self.uri.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body read as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then `otherwise`.
    next: VecDeque<Answer>,
    otherwise: Option<Answer>,
}

/// The receiver: its address and what it saw.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The bound port.
    pub port: u16,
    script: Arc<Mutex<Script>>,
    release: Arc<Notify>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// A receiver on a free port answering 200.
    pub fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    /// A receiver on this listener (to come up on a port chosen before).
    pub fn start_on(listener: TcpListener) -> Self {
        let port = listener.local_addr().expect("address").port();
        let script = Arc::new(Mutex::new(Script {
            otherwise: Some(Answer::Status(200)),
            ..Script::default()
        }));
        let release = Arc::new(Notify::new());
        let state = (Arc::clone(&script), Arc::clone(&release));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(answer))
        })
        .workers(1)
        .shutdown_timeout(0)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            script,
            release,
            handle,
        }
    }

    /// Answers every request from now on with `answer`.
    pub fn answer(&self, answer: Answer) {
        let mut script = self.script.lock().expect("script");
        script.next.clear();
        script.otherwise = Some(answer);
    }

    /// Answers the next request with `answer`, then as before.
    pub fn answer_next(&self, answer: Answer) {
        self.script.lock().expect("script").next.push_back(answer);
    }

    /// Lets every held request answer 200.
    pub fn release(&self) {
        self.release.notify_waiters();
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().expect("script").received.clone()
    }

    /// Waits until at least `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let started = std::time::Instant::now();
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                started.elapsed() < within,
                "the receiver got {} requests within {within:?}, expected {n}: {received:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Stops listening; held requests are dropped.
        drop(self.handle.stop(false));
    }
}

type Shared = (Arc<Mutex<Script>>, Arc<Notify>);

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let answer = {
        let mut script = state.0.lock().expect("script");
        script.received.push(Received {
            uri: req.uri().to_string(),
            idempotency_key: header("idempotency-key"),
            user_agent: header("user-agent"),
            method: req.method().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        });
        script
            .next
            .pop_front()
            .or_else(|| script.otherwise.clone())
            .unwrap_or(Answer::Status(200))
    };
    match answer {
        Answer::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("a status code"))
                .finish()
        }
        Answer::Json(code, body) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("a status code"))
                .content_type("application/json")
                .body(body)
        }
        Answer::Redirect(location) => HttpResponse::Found()
            .insert_header(("location", location))
            .finish(),
        Answer::Hold => {
            state.1.notified().await;
            HttpResponse::Ok().finish()
        }
    }
}
