# frozen_string_literal: true

# Test fixture: a plain Rack app (no framework) whose endpoints exercise the
# loader and the core; the same endpoints as testdata/wsgi/echo. Endpoints
# are chosen by PATH_INFO (see ROUTES below); /echo/<anything> is /echo too,
# and /status/NNN answers status NNN. /ws is a WebSocket echo server written
# by hand on rack.hijack. Works with Rack 2 and Rack 3 (lowercase headers).

require "digest"
require "json"

module EchoApp
  CLOSE_COUNT = [0] # close() calls on the bodies /closing returns
  WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

  module_function

  def query(env)
    out = {}
    env["QUERY_STRING"].to_s.split("&").each do |pair|
      k, v = pair.split("=", 2)
      k = Rack::Utils.unescape(k.to_s)
      out[k] = Rack::Utils.unescape(v.to_s) unless out.key?(k)
    end
    out
  end

  def arg(env, name, default)
    query(env).fetch(name, default)
  end

  # Bytes as latin-1 text, like the WSGI fixture shows them.
  def text(s)
    s&.to_s&.dup&.force_encoding(Encoding::ISO_8859_1)&.encode(Encoding::UTF_8)
  end

  def reply(body, ctype: "text/plain; charset=utf-8", status: 200, extra: {})
    body = body.b
    [status, { "content-type" => ctype, "content-length" => body.bytesize.to_s }.merge(extra), [body]]
  end

  def json(obj, status: 200)
    reply(JSON.generate(obj), ctype: "application/json", status: status)
  end

  def hello(_env)
    [200, { "content-type" => "text/plain; charset=utf-8", "content-length" => "11" }, ["hello world"]]
  end

  def echo(env)
    input = env["rack.input"]
    digest = Digest::SHA256.new
    kept = +""
    total = 0
    buf = +""
    while input.read(65536, buf)
      digest.update(buf)
      total += buf.bytesize
      kept << buf if kept.bytesize <= 65536
    end
    headers = {}
    env.each { |k, v| headers[k] = text(v) if k.start_with?("HTTP_") && v.is_a?(String) }
    json({
      "method" => env["REQUEST_METHOD"],
      "script_name" => text(env["SCRIPT_NAME"]),
      "path_info" => text(env["PATH_INFO"]),
      "query_string" => text(env["QUERY_STRING"]),
      "content_type" => text(env["CONTENT_TYPE"]),
      "content_length" => text(env["CONTENT_LENGTH"]),
      "headers" => headers,
      "body_len" => total,
      "body_sha256" => digest.hexdigest,
      "body" => total <= 65536 ? text(kept) : nil,
      "remote_addr" => text(env["REMOTE_ADDR"]),
      "remote_port" => text(env["REMOTE_PORT"]),
      "url_scheme" => env["rack.url_scheme"],
      "server_name" => text(env["SERVER_NAME"]),
      "server_port" => text(env["SERVER_PORT"]),
      "server_protocol" => env["SERVER_PROTOCOL"],
      "pid" => Process.pid
    })
  end

  def pid(_env)
    reply(Process.pid.to_s)
  end

  def status(_env, code)
    return [code, {}, []] if code < 200 || code == 204 || code == 304

    reply("status #{code}", status: code)
  end

  # Rack 2 convention: one value per line.
  def cookies(_env)
    reply("cookies set", extra: { "set-cookie" => "a=1; Path=/\nb=2; Path=/" })
  end

  # Rack 3 convention: an Array of values.
  def cookies_array(_env)
    reply("cookies set", extra: { "set-cookie" => ["a=1; Path=/", "b=2; Path=/"] })
  end

  def big(env)
    n = Integer(arg(env, "n", "0"), 10)
    block = ("x" * 65536).freeze
    body = Enumerator.new do |y|
      left = n
      while left.positive?
        k = [left, block.bytesize].min
        y << (k == block.bytesize ? block : block.byteslice(0, k))
        left -= k
      end
    end
    [200, { "content-type" => "application/octet-stream" }, body]
  end

  def sleep_for(env)
    sleep(Float(arg(env, "s", "0")))
    pid(env)
  end

  def crash(_env)
    exit!(1)
  end

  def error(_env)
    raise "boom from app"
  end

  def stream(env)
    n = Integer(arg(env, "n", "3"), 10)
    delay = Float(arg(env, "delay", "0"))
    body = Enumerator.new do |y|
      n.times do |i|
        sleep(delay) if i.positive?
        y << "chunk #{i}\n"
      end
    end
    [200, { "content-type" => "text/plain; charset=utf-8" }, body]
  end

  # A Rack 3 streaming body: call(stream).
  def stream_call(env)
    n = Integer(arg(env, "n", "3"), 10)
    body = proc do |out|
      n.times { |i| out.write("call #{i}\n") }
      out.close
    end
    [200, { "content-type" => "text/plain; charset=utf-8" }, body]
  end

  # A body that must be closed.
  class Closing
    def initialize(chunks)
      @chunks = chunks
    end

    def each(&block)
      @chunks.each(&block)
    end

    def close
      CLOSE_COUNT[0] += 1
    end
  end

  def closing(_env)
    [200, { "content-type" => "text/plain; charset=utf-8" }, Closing.new(["closing ", "body"])]
  end

  def close_count(_env)
    reply(CLOSE_COUNT[0].to_s)
  end

  def printed(_env)
    $stdout.puts "hello stdout from app"
    $stderr.puts "hello stderr from app"
    reply("printed")
  end

  def env_dump(env)
    out = {}
    env.each do |k, v|
      case v
      when String then out[k] = text(v)
      when Integer, true, false then out[k] = v
      when Array then out[k] = v if v.all?(Integer)
      end
    end
    out["rack.input.class"] = env["rack.input"].class.name
    json(out)
  end

  def upload(env)
    input = env["rack.input"]
    digest = Digest::SHA256.new
    total = 0
    while (data = input.read(65536))
      digest.update(data)
      total += data.bytesize
    end
    json({ "len" => total, "sha256" => digest.hexdigest, "input" => input.class.name })
  end

  def readline(env)
    input = env["rack.input"]
    count = 0
    count += 1 while input.gets
    reply(count.to_s)
  end

  # The request body read twice: rack.input must be rewindable.
  def rewind(env)
    input = env["rack.input"]
    first = input.read
    input.rewind
    second = input.read
    reply("#{first.bytesize} #{second.bytesize} #{first == second}")
  end

  # A file body (to_path): this very file.
  class FileBody
    def initialize(path)
      @path = path
    end

    def to_path
      @path
    end

    def each
      File.open(@path, "rb") { |f| yield f.read }
    end
  end

  def file(_env)
    path = File.expand_path("public/hello.txt", __dir__)
    [200, { "content-type" => "text/plain" }, FileBody.new(path)]
  end

  # The response header rack.hijack (partial hijack).
  def partial_hijack(_env)
    hijack = lambda do |io|
      io.write("partial hijack\n")
      io.close
    end
    [200, { "content-type" => "text/plain", "connection" => "close", "rack.hijack" => hijack }, []]
  end

  # ---- WebSocket echo (RFC 6455), by hand on rack.hijack

  def ws(env)
    key = env["HTTP_SEC_WEBSOCKET_KEY"]
    unless key && env["HTTP_UPGRADE"].to_s.casecmp?("websocket")
      return reply("websocket upgrade required", status: 400)
    end

    io = env["rack.hijack"].call
    accept = [Digest::SHA1.digest(key + WS_GUID)].pack("m0")
    io.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
             "Sec-WebSocket-Accept: #{accept}\r\n\r\n")
    begin
      ws_loop(io)
    rescue EOFError, IOError, SystemCallError
      nil
    ensure
      io.close unless io.closed?
    end
    [200, {}, []] # ignored: the connection is hijacked
  end

  # /wsbg: the same, served from a thread of its own after the handshake, as
  # real WebSocket libraries do, so the process takes its next request.
  def ws_background(env)
    key = env["HTTP_SEC_WEBSOCKET_KEY"]
    return reply("websocket upgrade required", status: 400) unless key

    io = env["rack.hijack"].call
    accept = [Digest::SHA1.digest(key + WS_GUID)].pack("m0")
    io.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
             "Sec-WebSocket-Accept: #{accept}\r\n\r\n")
    Thread.new do
      ws_loop(io)
    rescue EOFError, IOError, SystemCallError
      nil
    ensure
      io.close unless io.closed?
    end
    [200, {}, []]
  end

  def ws_loop(io)
    loop do
      b0, b1 = read_exactly(io, 2).unpack("CC")
      fin_op = b0 & 0x8f
      opcode = b0 & 0x0f
      len = b1 & 0x7f
      len = read_exactly(io, 2).unpack1("n") if len == 126
      len = read_exactly(io, 8).unpack1("Q>") if len == 127
      mask = (b1 & 0x80).zero? ? nil : read_exactly(io, 4).unpack("C4")
      payload = len.zero? ? "".b : read_exactly(io, len)
      if mask
        bytes = payload.bytes
        bytes.each_index { |i| bytes[i] ^= mask[i & 3] }
        payload = bytes.pack("C*")
      end
      case opcode
      when 0x8 # close: answer with the same code, then hang up
        io.write(frame(0x88, payload))
        return
      when 0x9 # ping
        io.write(frame(0x8a, payload))
      when 0xa # pong
        nil
      else # text, binary, continuation: echoed unmasked
        io.write(frame(fin_op, payload))
      end
    end
  end

  def frame(b0, payload)
    len = payload.bytesize
    head = if len < 126
             [b0, len].pack("CC")
           elsif len < 65536
             [b0, 126, len].pack("CCn")
           else
             [b0, 127, len].pack("CCQ>")
           end
    head + payload
  end

  def read_exactly(io, n)
    data = io.read(n)
    raise EOFError, "websocket peer closed" if data.nil? || data.bytesize < n

    data
  end

  ROUTES = {
    "/" => :hello,
    "/echo" => :echo,
    "/pid" => :pid,
    "/cookies" => :cookies,
    "/cookies-array" => :cookies_array,
    "/big" => :big,
    "/sleep" => :sleep_for,
    "/crash" => :crash,
    "/error" => :error,
    "/stream" => :stream,
    "/stream-call" => :stream_call,
    "/closing" => :closing,
    "/close-count" => :close_count,
    "/print" => :printed,
    "/env" => :env_dump,
    "/upload" => :upload,
    "/readline" => :readline,
    "/rewind" => :rewind,
    "/file" => :file,
    "/partial-hijack" => :partial_hijack,
    "/ws" => :ws,
    "/wsbg" => :ws_background
  }.freeze

  def call(env)
    path = env["PATH_INFO"].to_s
    path = "/" if path.empty?
    handler = ROUTES[path]
    return send(handler, env) if handler
    return echo(env) if path.start_with?("/echo/") # so tests can see any PATH_INFO echoed

    if path.start_with?("/status/")
      code = Integer(path.delete_prefix("/status/"), 10, exception: false)
      return status(env, code) if code && code >= 100 && code <= 999
    end
    reply("not found: #{text(path)}", status: 404)
  end
end

run EchoApp
