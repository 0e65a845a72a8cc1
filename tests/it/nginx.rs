//! A real nginx on loopback as a replay target: a minimal config in a tempdir, an access log
//! that records what each request looked like on arrival, stopped on drop.
//!
//! nginx must be installed (`apt-get install nginx-light`); a test that needs it fails with a
//! message saying so rather than skipping.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fields of the access log, tab-separated, in this order.
const LOG_FORMAT: &str = "$request_method\\t$request_uri\\t$http_x_test\\t$content_length\\t\
                          $request_length\\t$host\\t$http_host\\t$server_protocol\\t$connection\\t\
                          $connection_requests\\t$status\\t$request_body";

/// One access-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub uri: String,
    /// The `X-Test` header (`-` when absent).
    pub x_test: String,
    /// The `Content-Length` header (`-` when absent).
    pub content_length: String,
    /// Bytes of request line, headers and body as received.
    pub request_length: usize,
    /// `$host`: the Host header's name part.
    pub host: String,
    /// The Host header as sent.
    pub http_host: String,
    pub protocol: String,
    /// Connection serial number: equal for requests on one keep-alive connection.
    pub connection: String,
    pub status: u16,
    /// The body as nginx read it (de-chunked; `"` as `\x22`, `-` when empty).
    pub body: String,
}

pub struct Nginx {
    pub port: u16,
    /// The plain backend behind the logging front (nginx reads bodies only when proxying).
    backend_port: u16,
    dir: tempfile::TempDir,
    tls: bool,
    child: Option<Child>,
}

/// The nginx executable (Debian's, or the one on the PATH); `None` when there is none.
pub fn find_nginx() -> Option<PathBuf> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    let on_path = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status();
    on_path.is_ok().then(|| PathBuf::from("nginx"))
}

/// The nginx executable, or a panic telling how to install it.
fn nginx_binary() -> PathBuf {
    find_nginx().unwrap_or_else(|| {
        panic!(
            "nginx is not installed: these tests need a real nginx as the replay target \
             (apt-get install -y nginx-light)"
        )
    })
}

/// Starts nginx with prefix `dir` on `dir/nginx.conf`, errors in `dir/error.log`.
pub fn spawn_nginx(dir: &Path) -> Child {
    Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx")
}

/// A self-signed certificate for `localhost`, valid a day, in `dir/cert.pem` with its key
/// (made with `openssl req -newkey KEY…`) in `dir/key.pem`.
pub fn self_signed_certificate(dir: &Path, key: &[&str]) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey"])
        .args(key)
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed to make a test certificate");
    assert!(status.success(), "openssl req failed");
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Nginx {
    /// nginx serving `200 ok` over plain HTTP.
    pub fn start() -> Nginx {
        Nginx::launch(false)
    }

    /// nginx serving `200 ok` over TLS with a fresh self-signed certificate for `localhost`.
    pub fn start_tls() -> Nginx {
        Nginx::launch(true)
    }

    fn launch(tls: bool) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut nginx = Nginx {
            port,
            backend_port: free_port(),
            dir,
            tls,
            child: None,
        };
        if tls {
            self_signed_certificate(nginx.dir.path(), &["rsa:2048"]);
        }
        nginx.write_config();
        nginx.restart();
        nginx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let (listen, ssl) = if self.tls {
            (
                format!("listen 127.0.0.1:{} ssl;", self.port),
                format!("ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;"),
            )
        } else {
            (format!("listen 127.0.0.1:{};", self.port), String::new())
        };
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  log_format t \"{LOG_FORMAT}\";\n  access_log {d}/access.log t;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               keepalive_requests 1000000;\n\
               server {{\n    {listen}\n    {ssl}\n    location / {{ proxy_pass http://127.0.0.1:{backend}; }}\n  }}\n\
               server {{\n    listen 127.0.0.1:{backend};\n    access_log off;\n    location / {{ return 200 \"ok\"; }}\n  }}\n}}\n",
            backend = self.backend_port,
        );
        std::fs::write(self.path("nginx.conf"), config).expect("write nginx.conf");
    }

    /// Starts nginx (again, after [`Nginx::stop`]) on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nginx already running");
        self.child = Some(spawn_nginx(self.dir.path()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "nginx exited with {status}: {}",
                    std::fs::read_to_string(self.path("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills nginx (connections are reset, the port is refused until [`Nginx::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// The access log so far.
    pub fn log(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(self.path("access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                assert_eq!(f.len(), 12, "unexpected access log line {line:?}");
                Logged {
                    method: f[0].into(),
                    uri: f[1].into(),
                    x_test: f[2].into(),
                    content_length: f[3].into(),
                    request_length: f[4].parse().unwrap(),
                    host: f[5].into(),
                    http_host: f[6].into(),
                    protocol: f[7].into(),
                    connection: f[8].into(),
                    status: f[10].parse().unwrap(),
                    body: f[11].into(),
                }
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
