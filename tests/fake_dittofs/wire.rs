//! Wire format: replies as `net/http`, chi and `handlers/problem.go` /
//! `handlers/response.go` write them, and request bodies decoded the way
//! `handlers/helpers.go` `decodeJSONBody` (Go `encoding/json`) decodes them.

use serde_json::{Map, Value};

/// An HTTP answer, built by the handlers and turned into an axum response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What a handler returns; `Err` is an early error answer (so `?` works).
pub type HResult = Result<Reply, Reply>;

impl Reply {
    /// `WriteJSON` (handlers/response.go): `application/json`, Go encoder.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_string())],
            body: go_json(value),
        }
    }

    pub fn ok(value: &Value) -> Reply {
        Reply::json(200, value)
    }

    pub fn created(value: &Value) -> Reply {
        Reply::json(201, value)
    }

    /// `WriteNoContent`: 204 without body or content type.
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `WriteProblem` (handlers/problem.go): RFC 7807 body with
    /// `type:"about:blank"`, `title`, `status`, `detail` (omitempty).
    pub fn problem(status: u16, title: &str, detail: &str) -> Reply {
        let mut body = Map::new();
        body.insert("type".into(), "about:blank".into());
        body.insert("title".into(), title.into());
        body.insert("status".into(), status.into());
        if !detail.is_empty() {
            body.insert("detail".into(), detail.into());
        }
        Reply {
            status,
            headers: vec![("content-type", "application/problem+json".to_string())],
            body: go_json(&Value::Object(body)),
        }
    }

    pub fn bad_request(detail: &str) -> Reply {
        Reply::problem(400, "Bad Request", detail)
    }

    pub fn unauthorized(detail: &str) -> Reply {
        Reply::problem(401, "Unauthorized", detail)
    }

    pub fn forbidden(detail: &str) -> Reply {
        Reply::problem(403, "Forbidden", detail)
    }

    pub fn not_found(detail: &str) -> Reply {
        Reply::problem(404, "Not Found", detail)
    }

    pub fn conflict(detail: &str) -> Reply {
        Reply::problem(409, "Conflict", detail)
    }

    pub fn internal(detail: &str) -> Reply {
        Reply::problem(500, "Internal Server Error", detail)
    }

    /// The 422 body of `validateAndRespond` (handlers/adapter_settings.go).
    pub fn validation_failed(errors: Map<String, Value>) -> Reply {
        let mut body = Map::new();
        body.insert("type".into(), "about:blank".into());
        body.insert("title".into(), "Validation Failed".into());
        body.insert("status".into(), 422.into());
        body.insert(
            "detail".into(),
            "One or more settings are outside valid range".into(),
        );
        body.insert("errors".into(), Value::Object(errors));
        Reply {
            status: 422,
            headers: vec![("content-type", "application/problem+json".to_string())],
            body: go_json(&Value::Object(body)),
        }
    }

    /// Go's `http.Error`: text/plain, nosniff, the message plus a newline.
    /// Every auth-middleware rejection (middleware/auth.go) uses it.
    pub fn http_error(status: u16, message: &str) -> Reply {
        Reply {
            status,
            headers: vec![
                ("content-type", "text/plain; charset=utf-8".to_string()),
                ("x-content-type-options", "nosniff".to_string()),
            ],
            body: format!("{message}\n").into_bytes(),
        }
    }

    /// chi's default not-found handler (`http.NotFound`).
    pub fn chi_not_found() -> Reply {
        Reply::http_error(404, "404 page not found")
    }

    /// chi v5.1 `methodNotAllowedHandler`: 405, one `Allow` header per
    /// method, empty body.
    pub fn method_not_allowed(allowed: &[&'static str]) -> Reply {
        Reply {
            status: 405,
            headers: allowed
                .iter()
                .map(|m| ("allow", (*m).to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    /// `http.Redirect(w, r, url, 307)` for a GET request.
    pub fn temporary_redirect(location: &str) -> Reply {
        Reply {
            status: 307,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".to_string()),
                ("location", location.to_string()),
            ],
            body: format!("<a href=\"{location}\">Temporary Redirect</a>.\n\n").into_bytes(),
        }
    }
}

/// Go's `http.StatusText`: the IANA reason phrase, except where Go keeps an
/// older one.
pub fn status_text(status: u16) -> String {
    match status {
        413 => "Request Entity Too Large".to_string(),
        414 => "Request URI Too Long".to_string(),
        416 => "Requested Range Not Satisfiable".to_string(),
        422 => "Unprocessable Entity".to_string(),
        _ => ::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
            .to_string(),
    }
}

/// `json.NewEncoder(w).Encode(v)`: compact JSON, HTML-safe escaping of
/// `<`, `>`, `&`, U+2028 and U+2029, and a trailing newline. (Keys come out
/// sorted; Go writes struct fields in declaration order. JSON clients do not
/// care.)
pub fn go_json(value: &Value) -> Vec<u8> {
    let raw = serde_json::to_string(value).expect("serialize JSON");
    let mut out = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out.into_bytes()
}

/// `maxRequestBodyBytes` (handlers/helpers.go).
pub const MAX_BODY: usize = 1 << 20;

/// A request body decoded as `decodeJSONBody` decodes it into a Go struct:
/// the first JSON value only (trailing bytes are never read), `null` = all
/// fields zero, unknown fields ignored, field names matched
/// case-insensitively (Go prefers an exact match), a JSON `null` leaves a
/// field at its zero value, and any type mismatch in a field the struct
/// declares fails the whole decode (400 `Invalid request body`).
///
/// Use: `let mut d = Body::decode(body)?;` then typed getters, then
/// `d.finish()?` before acting on anything.
pub struct Body {
    obj: Map<String, Value>,
    type_error: bool,
}

impl Body {
    pub fn decode(body: &Option<Vec<u8>>) -> Result<Body, Reply> {
        let Some(body) = body else {
            return Err(too_large());
        };
        if body.len() > MAX_BODY {
            return Err(too_large());
        }
        let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            _ => return Err(Reply::bad_request("Invalid request body")),
        };
        let obj = match value {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err(Reply::bad_request("Invalid request body")),
        };
        Ok(Body {
            obj,
            type_error: false,
        })
    }

    /// The raw value of a field (exact key first, then case-insensitive);
    /// `None` when absent or JSON `null`.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        let v = match self.obj.get(key) {
            Some(v) => Some(v),
            None => self
                .obj
                .iter()
                .find(|(k, _)| k.to_lowercase() == key.to_lowercase())
                .map(|(_, v)| v),
        };
        v.filter(|v| !v.is_null())
    }

    fn mismatch<T>(&mut self) -> Option<T> {
        self.type_error = true;
        None
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.raw(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => self.mismatch(),
        }
    }

    /// A Go `int` (64-bit): an integral JSON number without fraction or
    /// exponent that fits.
    pub fn int(&mut self, key: &str) -> Option<i64> {
        match self.raw(key) {
            None => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(_) => self.mismatch(),
        }
    }

    pub fn uint32(&mut self, key: &str) -> Option<u32> {
        match self.raw(key) {
            None => None,
            Some(Value::Number(n)) => match n.as_u64().and_then(|v| u32::try_from(v).ok()) {
                Some(v) => Some(v),
                None => self.mismatch(),
            },
            Some(_) => self.mismatch(),
        }
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        match self.raw(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => self.mismatch(),
        }
    }

    /// `[]string` / `*[]string`; a `null` element decodes to `""` in Go.
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        match self.raw(key) {
            None => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        Value::Null => out.push(String::new()),
                        _ => return self.mismatch(),
                    }
                }
                Some(out)
            }
            Some(_) => self.mismatch(),
        }
    }

    /// `map[string]any`.
    pub fn object(&mut self, key: &str) -> Option<Map<String, Value>> {
        match self.raw(key) {
            None => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => self.mismatch(),
        }
    }

    /// `map[string]string`-like maps of strings (`share_permissions`).
    pub fn string_map(&mut self, key: &str) -> Option<Map<String, Value>> {
        match self.raw(key) {
            None => None,
            Some(Value::Object(m)) if m.values().all(|v| v.is_string() || v.is_null()) => {
                Some(m.clone())
            }
            Some(_) => self.mismatch(),
        }
    }

    /// Fails with 400 `Invalid request body` when any declared field had
    /// the wrong JSON type.
    pub fn finish(&self) -> Result<(), Reply> {
        if self.type_error {
            Err(Reply::bad_request("Invalid request body"))
        } else {
            Ok(())
        }
    }
}

fn too_large() -> Reply {
    Reply::problem(
        413,
        "Request Entity Too Large",
        "request body exceeds the 1 MiB limit",
    )
}
