# frozen_string_literal: true

# Ferry's Rack loader.
#
# The core runs this script as `ruby rack.rb` with the working directory set
# to the app root and the environment described in docs/architecture.md ("The
# loader contract"). It sets up Bundler when the app has a Gemfile, loads
# config.ru with Rack::Builder, listens on a Unix socket, reports readiness
# (or the load error) as one JSON line on the status fd, and then serves
# HTTP/1.1 on that socket with persistent connections: one connection at a
# time, or FERRY_THREADS connections at once, one thread each. With
# FERRY_SPAWN_METHOD=smart it is a preloader that forks workers on demand.
#
# For the app, defined before config.ru is loaded (see install_api):
#
#   Ferry.on_out_of_band_work { ... }    # or (callable); returns the hook
#   PhusionPassenger.on_event(:oob_work) { ... }   # apps written for Passenger
#   PhusionPassenger.on_event(:starting_worker_process) { |forked| ... }
#   PhusionPassenger.on_event(:stopping_worker_process) { ... }
#   PhusionPassenger.on_event(:starting_request_handler_thread) { ... }
#
# PhusionPassenger is a stand-in, defined only when it is not defined yet;
# if the real Passenger API is loaded (before or after), its call_event runs
# too. Ferry is not defined when the app has a ferry.rb of its own (root,
# lib/ or app/*/: a Rails model, say), so that its `class Ferry` works.
#
# A request with the header X-Ferry-Oob-Work is the core's (clients cannot
# send X-Ferry-* headers) and never reaches the app: the loader runs every
# out-of-band hook (Ferry's, then Passenger's :oob_work; all of them, even
# after one raised), or GC.start when there is none, and answers 200, or 500
# naming the errors (each with its backtrace on stderr); the connection then
# closes. The app asks for it with the response header
# X-Ferry-Request-OOB-Work: true (or Passenger's !~Request-OOB-Work), which
# the loader passes on like any other: the core acts on it.
#
# :starting_worker_process runs (forked = false) after the app is loaded in
# direct spawning, and (forked = true) in each smart-spawned worker after
# the fork, never in the preloader; an error there fails the spawn.
# :stopping_worker_process runs after SIGTERM, once the last request is
# done (not when the lifeline breaks: that exit is immediate).
#
# SIGQUIT prints the backtrace of every Ruby thread on stderr (see
# install_quit) and the process carries on.
#
# Works with Rack 2 and Rack 3. Nothing that is a gem is required before
# Bundler has set up the app's bundle (`socket` and core classes only), so a
# Gemfile.lock can pin any version of a default gem (json, stringio, ...).

$stdout.sync = true
$stderr.sync = true

# Not under Ferry: the app may have its own Ferry (see install_api).
module FerryLoader
  # The loader's internals; nothing here is an API for apps.
  module RackLoader
    MAX_HEAD = 64 * 1024         # request line + headers
    READ_SIZE = 64 * 1024        # socket reads while parsing a head
    SMALL_BODY = 64 * 1024       # bodies up to this size stay in memory
    BODY_CHUNK = 1024 * 1024     # socket reads while spooling a large body
    CRLF = "\r\n"
    HEAD_END = "\r\n\r\n"
    COLON = ": "
    LAST_CHUNK = "0\r\n\r\n"
    CL_LINE = "Content-Length: "
    EMPTY_BODY = "".b.freeze
    CHUNKED_LINE = "Transfer-Encoding: chunked\r\n"
    # ferry-wire/1 (docs/loader-wire.md): chosen when FERRY_WIRE offers it.
    WIRE = (ENV["FERRY_WIRE"] || "").split(",").include?("1") ? 1 : 0
    WIRE_MAGIC = 0xF1
    WIRE_MAX_HEAD = 1 << 20
    WIRE_END = "\0\0\0\0".b.freeze     # the end chunk of a framed response
    WIRE_SWITCH = "\xFF\xFF\xFF\xFF".b.freeze # HTTP/1.1 follows, then the close
    CLOSE_LINE = "Connection: close\r\n"
    LOADER_PATH = File.expand_path(__FILE__)
    REASONS = {
      100 => "Continue", 101 => "Switching Protocols", 102 => "Processing", 103 => "Early Hints",
      200 => "OK", 201 => "Created", 202 => "Accepted", 203 => "Non-Authoritative Information",
      204 => "No Content", 205 => "Reset Content", 206 => "Partial Content", 207 => "Multi-Status",
      208 => "Already Reported", 226 => "IM Used",
      300 => "Multiple Choices", 301 => "Moved Permanently", 302 => "Found", 303 => "See Other",
      304 => "Not Modified", 305 => "Use Proxy", 307 => "Temporary Redirect", 308 => "Permanent Redirect",
      400 => "Bad Request", 401 => "Unauthorized", 402 => "Payment Required", 403 => "Forbidden",
      404 => "Not Found", 405 => "Method Not Allowed", 406 => "Not Acceptable",
      407 => "Proxy Authentication Required", 408 => "Request Timeout", 409 => "Conflict", 410 => "Gone",
      411 => "Length Required", 412 => "Precondition Failed", 413 => "Content Too Large",
      414 => "URI Too Long", 415 => "Unsupported Media Type", 416 => "Range Not Satisfiable",
      417 => "Expectation Failed", 418 => "I'm a teapot", 421 => "Misdirected Request",
      422 => "Unprocessable Content", 423 => "Locked", 424 => "Failed Dependency", 425 => "Too Early",
      426 => "Upgrade Required", 428 => "Precondition Required", 429 => "Too Many Requests",
      431 => "Request Header Fields Too Large", 451 => "Unavailable For Legal Reasons",
      500 => "Internal Server Error", 501 => "Not Implemented", 502 => "Bad Gateway",
      503 => "Service Unavailable", 504 => "Gateway Timeout", 505 => "HTTP Version Not Supported",
      506 => "Variant Also Negotiates", 507 => "Insufficient Storage", 508 => "Loop Detected",
      510 => "Not Extended", 511 => "Network Authentication Required"
    }.freeze

    # The core's end of a connection failed while we were writing to it. An
    # Exception, not a StandardError, so that an app's `rescue => e` around
    # its body iteration does not swallow it.
    class ClientGone < Exception # rubocop:disable Lint/InheritException
    end

    # A load failure with the fix the user should apply.
    class StartupError < StandardError
      attr_reader :original, :fix

      def initialize(original, fix)
        @original = original
        @fix = fix
        super(original.message)
      end
    end

    # ------------------------------------------------------------ helpers --

    def self.log(msg)
      $stderr.write("[ferry rack] #{msg}\n")
    rescue StandardError
      nil
    end

    def self.json_string(s)
      s = s.to_s.dup.force_encoding(Encoding::UTF_8)
      s = s.scrub("\uFFFD") unless s.valid_encoding?
      out = s.gsub(/["\\\u0000-\u001f\u007f\u2028\u2029]/) do |c|
        case c
        when '"' then '\\"'
        when "\\" then "\\\\"
        when "\n" then "\\n"
        when "\r" then "\\r"
        when "\t" then "\\t"
        else format("\\u%04x", c.ord)
        end
      end
      "\"#{out}\""
    end

    def self.json_line(pairs)
      body = pairs.map do |k, v|
        val = case v
              when String then json_string(v)
              when true, false, Integer then v.to_s
              else json_string(v.to_s)
              end
        "#{json_string(k)}:#{val}"
      end
      "{#{body.join(",")}}\n"
    end

    # The string value of key in a one-level JSON object (the spawn command).
    def self.json_field(text, key)
      m = /"#{Regexp.escape(key)}"\s*:\s*"((?:[^"\\]|\\.)*)"/m.match(text) or return nil
      m[1].gsub(/\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)/m) do
        e = Regexp.last_match(1)
        case e[0]
        when "u" then [e[1, 4].hex].pack("U")
        when "x" then e[1, 2].hex.chr
        when "n" then "\n"
        when "t" then "\t"
        when "r" then "\r"
        when "b" then "\b"
        when "f" then "\f"
        else e
        end
      end
    end

    # report writes the handshake line and closes io, unless keep (a ready
    # process keeps it for backtraces on demand).
    # The ready handshake, naming the wire chosen (none: HTTP/1.1).
    def self.ready_pairs(sock, threads)
      pairs = [["status", "ready"], ["socket", sock], ["concurrency", threads]]
      pairs << ["wire", WIRE] if WIRE.positive?
      pairs
    end

    def self.report(io, pairs, keep: false)
      return unless io

      begin
        io.write(json_line(pairs))
        io.flush
      ensure
        io.close unless keep
      end
    rescue StandardError => e
      log("cannot write to the status fd: #{e.class}: #{e.message}")
    end

    def self.open_fd(name, mode)
      fd = Integer(ENV.fetch(name, ""), 10)
      return nil if fd.negative?

      io = IO.for_fd(fd, mode, autoclose: true)
      io.close_on_exec = true # not for the app's children
      io
    rescue ArgumentError, TypeError, SystemCallError
      nil
    end

    # The core holds the only write end of the lifeline: EOF (or an error)
    # means it is gone, and so must we be, at once.
    def self.watch_lifeline(io)
      return unless io

      t = Thread.new do
        begin
          loop { io.readpartial(4096) }
        rescue Exception # rubocop:disable Lint/RescueException
          nil
        end
        exit!(0)
      end
      t.name = "ferry-lifeline" if t.respond_to?(:name=)
      t.report_on_exception = false
    end

    # "ExcClass: message" on one line, and the details: the message and the
    # backtrace without the loader's own frames.
    def self.describe(exc)
      original = exc.is_a?(StartupError) ? exc.original : exc
      msg = original.message.to_s.strip.gsub(/\s*\n\s*/, " ")
      msg = "#{msg[0, 1000]}..." if msg.length > 1000
      summary = msg.empty? ? original.class.name.to_s : "#{original.class.name}: #{msg}"
      bt = original.backtrace
      if bt && !bt.empty?
        app_bt = bt.reject { |l| l.start_with?(LOADER_PATH) }
        original.set_backtrace(app_bt) unless app_bt.empty?
      end
      details = original.full_message(highlight: false, order: :top)
      details = "#{exc.fix}\n\n#{details}" if exc.is_a?(StartupError)
      [summary, details]
    end

    # ------------------------------------------- the app's API: hooks --

    # Out-of-band work hooks (Ferry.on_out_of_band_work) and Passenger's
    # events (PhusionPassenger.on_event), both defined before the app is
    # loaded by RackLoader.install_api.
    module Hooks
      # Passenger's event names; it raises ArgumentError for any other.
      EVENTS = %i[starting_worker_process stopping_worker_process starting_request_handler_thread
                  credentials after_installing_signal_handlers oob_work].freeze

      @oob = []                                  # Ferry.on_out_of_band_work
      @events = EVENTS.to_h { |e| [e, []] }      # PhusionPassenger.on_event
      @oob_lock = Mutex.new
      @root = nil
      @advertised_concurrency_level = nil

      class << self
        attr_accessor :root, :advertised_concurrency_level

        def on_out_of_band_work(hook)
          raise ArgumentError, "Ferry.on_out_of_band_work needs a block or something that responds to call" \
            unless hook.respond_to?(:call)

          @oob << hook
          hook
        end

        def on_event(name, hook)
          list = @events[name.is_a?(String) ? name.to_sym : name]
          raise ArgumentError, "Unknown event name '#{name}'" unless list
          raise ArgumentError, "PhusionPassenger.on_event(#{name.inspect}) needs a block" unless hook.respond_to?(:call)

          list << hook
          hook
        end

        # Runs the hooks of an event; the first error propagates (as in
        # Passenger). The real Passenger API, if the app loaded it, too.
        def call_event!(name, *args)
          @events.fetch(name).dup.each { |hook| hook.call(*args) }
          foreign_passenger&.call_event(name, *args)
          nil
        end

        # The same, for events whose errors are only logged.
        def call_event(name, *args)
          call_event!(name, *args)
        rescue SystemExit, SignalException
          raise
        rescue Exception => e # rubocop:disable Lint/RescueException
          RackLoader.log("error in a PhusionPassenger.on_event(:#{name}) hook:\n#{e.full_message(highlight: false)}")
          nil
        end

        # The app's PhusionPassenger when it is not the one install_api
        # defined (the real gem's public API, loaded before or after).
        def foreign_passenger
          return nil unless Object.const_defined?(:PhusionPassenger, false)

          pp = ::PhusionPassenger
          return nil unless pp.respond_to?(:call_event)

          loc = pp.method(:call_event).source_location
          loc && loc[0] == LOADER_PATH ? nil : pp
        end

        def hook_name(hook)
          loc = hook.respond_to?(:source_location) ? hook.source_location : nil
          if loc
            path = loc[0].to_s
            path = path.delete_prefix("#{@root}/") if @root
            "#{path}:#{loc[1]}"
          else
            hook.class.name || hook.inspect[0, 80]
          end
        end

        # The core's out-of-band request: runs every hook (all of them, even
        # after one raised), or GC.start when there is none. Returns the
        # whole response, which closes the connection.
        def out_of_band
          errors = []
          done = @oob_lock.synchronize do
            hooks = @oob + @events[:oob_work]
            foreign = foreign_passenger
            if hooks.empty? && foreign.nil?
              GC.start
              "GC.start"
            else
              hooks.each { |hook| run_hook(hook_name(hook), errors) { hook.call } }
              run_hook("PhusionPassenger.call_event(:oob_work)", errors) { foreign.call_event(:oob_work) } if foreign
              n = hooks.size + (foreign ? 1 : 0)
              "#{n} hook#{n == 1 ? "" : "s"}"
            end
          end
          if errors.empty?
            code = "200 OK"
            body = "out-of-band work done: #{done}\n"
          else
            code = "500 Internal Server Error"
            body = "out-of-band work failed: #{errors.join("; ")}\n"
          end
          body = body.b
          "HTTP/1.1 #{code}\r\nContent-Type: text/plain; charset=utf-8\r\n" \
            "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n".b << body
        end

        private

        def run_hook(name, errors)
          yield
        rescue SystemExit, SignalException
          raise
        rescue Exception => e # rubocop:disable Lint/RescueException
          RackLoader.log("error in out-of-band hook #{name}:\n#{e.full_message(highlight: false)}")
          msg = e.message.to_s.strip.gsub(/\s*\n\s*/, " ")
          msg = "#{msg[0, 300]}..." if msg.length > 300
          errors << "#{name}: #{e.class}#{msg.empty? ? "" : ": #{msg}"}"
        end
      end
    end

    # Where an app that has its own Ferry would define it: then Ferry's is
    # not defined, so that `class Ferry` (a Rails model, say) still works.
    def self.own_ferry(root)
      ["ferry.rb", "lib/ferry.rb", *Dir.glob("app/*/ferry.rb", base: root).sort]
        .find { |rel| File.file?(File.join(root, rel)) }
    end

    # Defines, before the app is loaded, Ferry.on_out_of_band_work and (for
    # apps written for Passenger, unless its real API is loaded already)
    # PhusionPassenger.on_event. Methods an app's Ferry already has (one
    # loaded before, e.g. with RUBYOPT) are left alone.
    def self.install_api(root)
      Hooks.root = File.expand_path(root)
      own = own_ferry(root)
      if own
        log("the app has its own #{own}: Ferry.on_out_of_band_work is not defined " \
            "(PhusionPassenger.on_event(:oob_work) is; without hooks, out-of-band work is GC.start)")
      else
        ferry = Object.const_defined?(:Ferry, false) ? ::Ferry : Object.const_set(:Ferry, Module.new)
        if ferry.instance_of?(Module) && !ferry.respond_to?(:on_out_of_band_work)
          # Ferry.on_out_of_band_work { ... } or Ferry.on_out_of_band_work(callable):
          # run (no arguments) when the core asks for out-of-band work.
          ferry.define_singleton_method(:on_out_of_band_work) do |callable = nil, &block|
            Hooks.on_out_of_band_work(callable || block)
          end
        end
      end
      return if Object.const_defined?(:PhusionPassenger, false)

      # A stand-in for Passenger's public API: apps guard their hooks with
      # `if defined?(PhusionPassenger)`.
      pp = Object.const_set(:PhusionPassenger, Module.new)
      pp.define_singleton_method(:on_event) { |name, &block| Hooks.on_event(name, block) }
      pp.define_singleton_method(:call_event) { |name, *args| Hooks.call_event!(name, *args) }
      # Set by apps that serve WebSockets under Passenger; Ferry's concurrency
      # is what the loader reports, so it is only kept.
      pp.define_singleton_method(:advertised_concurrency_level) { Hooks.advertised_concurrency_level }
      pp.define_singleton_method(:advertised_concurrency_level=) { |v| Hooks.advertised_concurrency_level = v }
    end

    # ---------------------------------------------------------- SIGQUIT --

    QUIT_HEAD = "ferry: SIGQUIT: backtrace of every thread\n"
    QUIT_TAIL = "ferry: SIGQUIT: end of backtraces\n"

    # SIGQUIT (the core sends it before it kills a request that ran past
    # --max-request-time, and SIGKILLs a second later): the backtrace of
    # every Ruby thread on stderr; the process carries on.
    #
    # Ruby runs trap handlers in the main thread, between VM instructions,
    # once it holds the GVL: a thread stuck in sleep, IO, a Mutex or a Ruby
    # loop is fine. A thread stuck inside a C extension that holds the GVL
    # (a native loop that never checks for interrupts) keeps the handler
    # from running at all, and then nothing is printed before the SIGKILL.
    def self.install_quit
      @fd2 ||= IO.for_fd(2, "w", autoclose: false)
      # caller: where the main thread was, without the handler's frames.
      trap("QUIT") { dump_threads(caller) }
    rescue ArgumentError, SystemCallError, IOError
      nil
    end

    def self.dump_threads(here)
      write_fd2(append_threads(String.new(QUIT_HEAD, encoding: Encoding::BINARY), here) << QUIT_TAIL)
    rescue Exception # rubocop:disable Lint/RescueException
      nil # never the app's problem
    end

    # Appends the backtrace of every Ruby thread to out and returns it; here
    # is where the current thread was, without the trap handler's frames.
    def self.append_threads(out, here)
      threads = Thread.list
      threads.each_with_index do |t, i|
        # No blank lines: the core logs stderr line by line.
        out << "Thread #{i + 1} of #{threads.size}: ".b << t.inspect.b
        out << " (main)" if t.equal?(Thread.main)
        out << "\n"
        bt = t.equal?(Thread.current) ? here : t.backtrace
        if bt.nil? || bt.empty?
          out << "    (no backtrace)\n"
        else
          bt.each { |line| out << "    " << line.to_s.b << "\n" }
        end
      end
      out
    end

    # Not IO#write: syswrite takes no lock, which a trap handler cannot.
    def self.syswrite_all(io, data)
      until data.empty?
        begin
          n = io.syswrite(data)
          data = data.byteslice(n, data.bytesize - n)
        rescue IO::WaitWritable, Errno::EINTR
          return unless IO.select(nil, [io], nil, 1)
        end
      end
    end

    # Straight to fd 2, whatever the app made of $stderr.
    def self.write_fd2(data)
      io = @fd2 or return
      syswrite_all(io, data)
    rescue SystemCallError, IOError
      nil
    end

    # ---------------------------------------------- backtraces on demand --

    BT_END = "-- ferry: end of backtraces --\n"

    # SIGWINCH: the backtrace of every Ruby thread on io, and carry on. io is
    # the status pipe, which a ready process keeps: the core signals and
    # reads the dump there (ferry status --show=backtraces), apart from the
    # app's output. SIGWINCH is ignored by default, so a signal before this
    # is installed harms nothing. As for SIGQUIT, the handler runs in the
    # main thread once that holds the GVL.
    def self.install_backtraces(io)
      return unless io

      @bt_io = io
      trap("WINCH") { write_backtraces(caller) }
    rescue ArgumentError, SystemCallError, IOError
      nil
    end

    def self.write_backtraces(here)
      io = @bt_io or return
      syswrite_all(io, append_threads(String.new(encoding: Encoding::BINARY), here) << BT_END)
    rescue Exception # rubocop:disable Lint/RescueException
      nil # never the app's problem
    end

    # -------------------------------------------------------------- loading --

    # The Gemfile to set up, if the app has one: BUNDLE_GEMFILE when set
    # (e.g. a Gemfile.next), else Gemfile or gems.rb in the app root.
    def self.gemfile(root)
      own = %w[Gemfile gems.rb].map { |name| File.join(root, name) }.find { |path| File.file?(path) }
      return nil unless own

      given = ENV["BUNDLE_GEMFILE"]
      given && !given.empty? ? File.expand_path(given, root) : own
    end

    def self.bundler_fix(exc, root, gemfile)
      where = "in #{root}"
      name = exc.class.name.to_s
      case name
      when "Bundler::GemNotFound", "Bundler::GitError", "Bundler::PathError"
        "Bundler could not find the gems that #{gemfile} lists.\n" \
          "To fix it, run `bundle install` #{where} as the user the app runs as " \
          "(and with the same BUNDLE_* settings), then restart the app."
      when "Bundler::GemfileNotFound"
        "Bundler could not find the Gemfile (BUNDLE_GEMFILE=#{gemfile}).\n" \
          "To fix it, create the Gemfile or unset BUNDLE_GEMFILE."
      when "Bundler::GemfileError", "Bundler::Dsl::DSLError", "Bundler::GemspecError"
        "The Gemfile #{gemfile} is invalid.\nTo fix it, correct the error below, " \
          "check it with `bundle check` #{where}, then restart the app."
      when "Bundler::LockfileError"
        "Gemfile.lock #{where} is invalid.\nTo fix it, regenerate it with `bundle install` #{where}."
      when "Bundler::VersionConflict", "Bundler::SolveFailure"
        "The gems in #{gemfile} have conflicting requirements.\n" \
          "To fix it, adjust the versions in the Gemfile and run `bundle install` #{where}."
      when "Bundler::ProductionError"
        "Bundler runs in deployment/frozen mode and the Gemfile changed.\n" \
          "To fix it, run `bundle install` #{where} and deploy the updated Gemfile.lock."
      when "Gem::LoadError"
        "A gem was activated with a version other than the one #{gemfile} requires.\n" \
          "To fix it, run `bundle install` #{where}; if a default gem is involved, " \
          "pin the version that ships with Ruby #{RUBY_VERSION} or update Bundler."
      else
        "Bundler failed to set up the gems of #{gemfile}.\n" \
          "To fix it, run `bundle install` #{where} and check its output " \
          "(`bundle exec ruby -e 'require \"rack\"'` shows the same error)."
      end
    end

    def self.setup_bundler(root, gemfile)
      ENV["BUNDLE_GEMFILE"] = gemfile
      begin
        require "bundler/setup"
      rescue LoadError => e
        raise unless e.path.to_s.start_with?("bundler") || e.message.include?("bundler")

        raise StartupError.new(e, "The app has a Gemfile (#{gemfile}) but Bundler is not installed.\n" \
                                  "To fix it, install Bundler (`apt-get install ruby-bundler` or `gem install bundler`), " \
                                  "then run `bundle install` in #{root}.")
      rescue SystemExit => e
        # bundler/setup exits instead of raising when stdout is a terminal.
        raise StartupError.new(e, "Bundler exited with status #{e.status} while setting up #{gemfile}.\n" \
                                  "To fix it, run `bundle install` in #{root} and check its output.")
      rescue StandardError, ScriptError => e
        fix = bundler_fix(e, root, gemfile)
        unless ENV.fetch("PATH", "").split(":").any? { |d| File.executable?(File.join(d, "bundle")) }
          fix += "\n(The `bundle` command is not on the PATH: on Debian it comes with the ruby-bundler package.)"
        end
        raise StartupError.new(e, fix)
      end
    end

    def self.require_rack(root, bundled)
      require "rack"
    rescue LoadError => e
      raise unless e.path.to_s == "rack" || e.message.end_with?(" rack")

      fix = if bundled
              "The app's Gemfile does not include Rack.\nTo fix it, add `gem \"rack\"` to the Gemfile " \
                "and run `bundle install` in #{root}."
            else
              "Rack is not installed.\nTo fix it, install it (`apt-get install ruby-rack` or " \
                "`gem install rack`), or add a Gemfile with `gem \"rack\"` and run `bundle install` in #{root}."
            end
      raise StartupError.new(e, fix)
    end

    def self.load_app(root, startup)
      gemfile = gemfile(root)
      setup_bundler(root, gemfile) if gemfile
      require_rack(root, !gemfile.nil?)
      require "stringio"
      require "tempfile" # also for Rack::Multipart, which uses it without requiring it
      path = File.expand_path(startup, root)
      unless File.file?(path)
        raise LoadError, "cannot load the startup file #{path}: no such file " \
                         "(set the startup file if the app does not use config.ru)"
      end
      result = parse_config(path)
      app = result.is_a?(Array) ? result[0] : result # Rack 2: [app, options]
      # Rack::Utils here, before a preloader forks: once, in pages its
      # workers share, rather than in each worker (Server.new).
      rack_status_codes
      unless app.respond_to?(:call)
        raise TypeError, "#{startup} did not produce a Rack app (got #{app.class}); it needs a `run` statement"
      end

      app
    end

    # Rack::Builder.parse_file(path). Rack 1 and 2 evaluate its default
    # second argument, Rack::Server::Options.new, on every call, which loads
    # rack/server and optparse (milliseconds at every start) only to parse
    # the options of a "#\ -p 8080" comment line; a config.ru without one
    # gets nil instead, which is what those versions test for.
    def self.parse_config(path)
      builder = ::Rack::Builder
      params = builder.method(:parse_file).parameters
      if params.length == 2 && params[1][0] == :opt && path.end_with?(".ru") && !File.binread(path).include?("#\\")
        builder.parse_file(path, nil)
      else
        builder.parse_file(path)
      end
    end

    # Rack's reason phrases. Rack::Utils is an autoload, which loads uri,
    # set, time and date; servers load it, and Rack itself counts on what it
    # loads (Rack::Lint's URI.parse), so every process has it.
    def self.rack_status_codes
      defined?(::Rack::Utils::HTTP_STATUS_CODES) ? ::Rack::Utils::HTTP_STATUS_CODES : {}
    end

    def self.listen(path)
      raise ArgumentError, "FERRY_SOCKET is not set" if path.nil? || path.empty?

      begin
        server = UNIXServer.new(path)
      rescue Errno::EADDRINUSE
        # A stale socket file from an earlier process with the same path.
        raise unless File.socket?(path)

        File.unlink(path)
        server = UNIXServer.new(path)
      end
      server.listen(1024)
      server
    end

    # ----------------------------------------------------------- main ----

    def self.main
      status = open_fd("FERRY_STATUS_FD", "w")
      lifeline = open_fd("FERRY_LIFELINE_FD", "r")
      watch_lifeline(lifeline)

      root = ENV["FERRY_APP_ROOT"]
      root = Dir.pwd if root.nil? || root.empty?
      startup = ENV["FERRY_STARTUP_FILE"]
      startup = "config.ru" if startup.nil? || startup.empty?
      base = (ENV["FERRY_BASE_URI"] || "").sub(%r{/+\z}, "")
      threads = begin
        Integer(ENV.fetch("FERRY_THREADS", "1"), 10)
      rescue ArgumentError, TypeError
        1
      end
      threads = 1 if threads < 1
      smart = ENV["FERRY_SPAWN_METHOD"] == "smart"
      sock_path = ENV["FERRY_SOCKET"]

      install_quit
      begin
        Dir.chdir(root)
        install_api(root)
        app = load_app(root, startup)
        require "socket"
        if smart && (GC.respond_to?(:compact) || Process.respond_to?(:warmup))
          # Once, before the first fork: the workers share more pages.
          begin
            Process.respond_to?(:warmup) ? Process.warmup : GC.compact
          rescue NotImplementedError, StandardError
            nil
          end
        end
        listener = listen(sock_path)
        Hooks.call_event!(:starting_worker_process, false) unless smart
      rescue Exception => e # rubocop:disable Lint/RescueException
        summary, details = describe(e)
        begin
          $stderr.write(details)
          $stderr.write("\n") unless details.end_with?("\n")
        rescue StandardError
          nil
        end
        report(status, [["status", "error"], ["summary", summary], ["details", details]])
        exit!(1)
      end

      if smart
        Preloader.new(app, listener, sock_path, threads, base, lifeline).run(status)
      else
        server = Server.new(app, listener, sock_path, threads, base)
        server.install_signals
        Hooks.call_event(:after_installing_signal_handlers)
        install_backtraces(status)
        report(status, ready_pairs(sock_path, threads), keep: true)
        server.run
        Hooks.call_event(:stopping_worker_process)
      end
      exit(0)
    end

    # rack.hijack: the whole connection, for the app to keep.
    class Hijacker
      attr_accessor :env, :framed
      attr_reader :hijacked

      def initialize(io)
        @io = io
        @hijacked = false
        @env = nil
        @framed = false
      end

      def call(*)
        if @framed
          # The app writes HTTP/1.1 itself from here: the core is told so.
          @framed = false
          @io.write(WIRE_SWITCH)
        end
        @hijacked = true
        @env["rack.hijack_io"] = @io if @env
        @io
      end
    end

    # The stream a Rack 3 streaming body (one that responds to call) writes
    # to: chunked, or cut at the app's Content-Length (reads come from
    # rack.input, closing ends the body), or raw (after a 101, or
    # close-delimited: reads, writes and closes are the connection's).
    class BodyStream
      def initialize(conn, input, mode, limit)
        @conn = conn
        @input = input
        @mode = mode # :chunked, :fixed, :raw
        @limit = limit
        @written = 0
        @closed = false
      end

      def write(*strs)
        raise IOError, "closed stream" if @closed

        n = 0
        strs.each do |s|
          s = s.to_s
          len = s.bytesize
          next if len.zero?

          case @mode
          when :chunked
            put(len.to_s(16), CRLF, s, CRLF)
          when :fixed
            room = @limit - @written
            next if room <= 0

            if len > room
              s = s.byteslice(0, room)
              len = room
            end
            put(s)
          else
            put(s)
          end
          @written += len
          n += len
        end
        n
      end

      def <<(str)
        write(str)
        self
      end

      def flush
        self
      end

      def read(*args)
        return @conn.read(*args) if @mode == :raw

        @input ? @input.read(*args) : nil
      end

      def close_read
        @conn.close_read if @mode == :raw
        nil
      rescue SystemCallError, IOError
        nil
      end

      def close_write
        return close unless @mode == :raw

        @conn.close_write
        nil
      rescue SystemCallError, IOError
        nil
      end

      def close
        return if @closed

        @closed = true
        if @mode == :chunked
          put(LAST_CHUNK)
        elsif @mode == :raw
          begin
            @conn.close
          rescue SystemCallError, IOError
            nil
          end
        end
        nil
      end

      def closed?
        @closed
      end

      # Whether the body fell short of its Content-Length.
      def short?
        @mode == :fixed && @written < @limit
      end

      private

      def put(*parts)
        @conn.write(*parts)
      rescue SystemCallError, IOError
        raise ClientGone
      end
    end

    # The HTTP/1.1 server on the app socket.
    class Server
      def initialize(app, listener, sock_path, threads, base)
        @app = app
        @listener = listener
        @sock_path = sock_path
        @threads = threads
        @base = base
        @base_len = base.bytesize
        @stopping = false
        @wake_r, @wake_w = IO.pipe
        @busy = 0 # threads serving a connection
        @dropping = false # a thread is giving up its idle connection
        @busy_lock = Mutex.new
        @keys = {}   # header name as sent -> env key, :peer, :scheme or false
        @hosts = {}  # Host header -> [SERVER_NAME, SERVER_PORT], http
        @hostss = {} # the same for https
        @peers = {}  # X-Ferry-Client-Addr -> [REMOTE_ADDR, REMOTE_PORT]
        @status_lines = {}
        @name_kinds = {} # response header name -> name_kind
        @lines = {}      # request header line -> [env key, value]
        @wire = WIRE.positive?
        @fstatus = {}    # status code -> "200 OK" (ferry-wire/1)
        version = defined?(::Rack::VERSION) && ::Rack::VERSION.is_a?(Array) ? ::Rack::VERSION : [1, 3]
        @base_env = {
          "SCRIPT_NAME" => base,
          "SERVER_SOFTWARE" => "Ferry",
          "rack.version" => version,
          "rack.errors" => $stderr,
          "rack.multithread" => threads > 1,
          "rack.multiprocess" => true,
          "rack.run_once" => false,
          "rack.hijack?" => true,
          "rack.url_scheme" => "http",
          # Set for every request; here so that the copy has the right size.
          "REQUEST_METHOD" => "GET", "SERVER_PROTOCOL" => "HTTP/1.1", "REQUEST_URI" => "/",
          "QUERY_STRING" => "", "PATH_INFO" => "/", "SERVER_NAME" => "localhost", "SERVER_PORT" => "80",
          "rack.input" => nil, "rack.hijack" => nil, "rack.response_finished" => nil
        }.freeze
        @reasons = RackLoader.rack_status_codes.merge(REASONS)
      end

      def install_signals
        trap("TERM") do
          @stopping = true
          @wake_w.write_nonblock(".", exception: false)
        end
      end

      def run
        if @threads > 1
          pool = Array.new(@threads) do |i|
            t = Thread.new do
              Hooks.call_event(:starting_request_handler_thread)
              accept_loop
            rescue SystemExit => e # the app called exit: the process exits
              Thread.main.raise(e)
            end
            t.name = "ferry-worker-#{i}" if t.respond_to?(:name=)
            t
          end
          pool.each(&:join)
        else
          Hooks.call_event(:starting_request_handler_thread)
          accept_loop
        end
      ensure
        begin
          @listener.close
        rescue StandardError
          nil
        end
        begin
          File.unlink(@sock_path) if @sock_path
        rescue StandardError
          nil
        end
      end

      private

      def accept_loop
        listener = @listener
        watch = [listener, @wake_r]
        until @stopping
          conn = listener.accept_nonblock(exception: false)
          if conn == :wait_readable
            IO.select(watch)
            next
          end
          @busy_lock.synchronize { @busy += 1 }
          res = nil
          begin
            res = serve_conn(conn)
          ensure
            @busy_lock.synchronize do
              @busy -= 1
              @dropping = false if res == :dropped
            end
          end
        end
      end

      def serve_conn(conn)
        keep = false
        begin
          keep = serve_requests(conn)
        rescue ClientGone, SystemCallError, IOError
          nil
        rescue Exception => e # rubocop:disable Lint/RescueException
          raise if e.is_a?(SystemExit) || e.is_a?(SignalException)

          RackLoader.log("internal error:\n#{e.full_message(highlight: false)}")
        ensure
          unless keep == :hijacked
            begin
              conn.close
            rescue StandardError
              nil
            end
          end
        end
        keep
      end

      # Waits until conn has bytes. Returns true when it has, false when
      # stopping, and :dropped when the connection is given up because it is
      # idle while another connection waits and every thread has a
      # connection (the core has moved on to a new connection; serving one
      # connection per thread, this one would otherwise block it).
      def wait_request(conn, watch)
        mine = nil
        loop do
          ready = IO.select(watch)[0]
          return true if ready[0].equal?(conn)
          return false if @stopping || ready.include?(@wake_r)
          unless @busy >= @threads
            # A free thread will accept it.
            mine ||= [conn, @wake_r]
            r = IO.select(mine, nil, nil, 0.02)
            return true if r && r[0][0].equal?(conn)
            return false if @stopping

            next
          end
          return :dropped if @threads == 1

          # With threads, give the others a moment to notice a connection the
          # core has closed, and let only one thread drop its connection.
          mine ||= [conn, @wake_r]
          r = IO.select(mine, nil, nil, 0.1)
          return true if r && r[0][0].equal?(conn)
          return false if @stopping

          drop = @busy_lock.synchronize do
            if !@dropping && @busy >= @threads && IO.select([@listener], nil, nil, 0)
              @dropping = true
            end
          end
          return :dropped if drop
        end
      end

      def bad_request(conn, code = 400, reason = "Bad Request")
        body = "#{code} #{reason}\n"
        conn.write("HTTP/1.1 #{code} #{reason}\r\nContent-Type: text/plain; charset=utf-8\r\n" \
                   "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}")
        false
      rescue SystemCallError, IOError
        false
      end

      # Serves requests on conn until it closes; returns :hijacked if the app
      # took the connection over.
      def serve_requests(conn)
        watch = [conn, @listener, @wake_r]
        hijacker = Hijacker.new(conn)
        buf = nil
        while true # rubocop:disable Style/InfiniteLoop
          head, buf = read_head(conn, watch, buf)
          if head == :framed
            keep, buf = serve_framed(conn, buf, hijacker)
            return keep unless keep == true

            next
          end
          return head unless head.instance_of?(String)

          hijacker.framed = false

          # ---- the env
          lines = head.split(CRLF)
          parts = lines[0].split(" ")
          return bad_request(conn) unless parts.size == 3

          method, target, proto = parts
          env = @base_env.dup
          seen = header_env(env, lines)
          return bad_request(conn) unless seen

          peer, scheme, oob = seen
          request_env(env, method, target, proto, peer, scheme)
          ch = env["HTTP_CONNECTION"]
          if proto == "HTTP/1.1"
            keep = ch.nil? || !ch.match?(/close/i)
            http10 = false
          elsif proto == "HTTP/1.0"
            keep = !ch.nil? && ch.match?(/keep-alive/i)
            http10 = true
          else
            return bad_request(conn, 505, "HTTP Version Not Supported")
          end

          # ---- the body
          return bad_request(conn, 501, "Not Implemented") if env.key?("HTTP_TRANSFER_ENCODING")

          body = read_body(conn, env["CONTENT_LENGTH"], buf, method)
          return body unless body.instance_of?(Array)

          input, spool, buf = body
          if oob
            # X-Ferry-Oob-Work: only the core can send it (it drops every
            # client X-Ferry-* header). Not the app's request: the hooks run,
            # and the connection closes after the answer.
            spool&.close!
            put(conn, Hooks.out_of_band)
            return false
          end
          env["rack.input"] = input
          hijacker.env = env
          env["rack.hijack"] = hijacker
          env["rack.response_finished"] = []

          # ---- the response
          begin
            keep = respond(conn, env, method == "HEAD", keep, http10, hijacker)
          ensure
            spool&.close!
          end
          return keep unless keep == true
        end
      end

      # Serves one ferry-wire/1 request, buf holding its start. Returns
      # [what serve_requests returns or true to go on, the bytes after it].
      def serve_framed(conn, buf, hijacker)
        buf << conn.readpartial(READ_SIZE) while buf.bytesize < 5
        n = buf.unpack1("N", offset: 1)
        return [false, nil] if n > WIRE_MAX_HEAD

        stop = 5 + n
        buf << conn.readpartial(stop - buf.bytesize > READ_SIZE ? stop - buf.bytesize : READ_SIZE) while buf.bytesize < stop
        # The env, already in CGI form: one split.
        env = @base_env.dup
        env.merge!(Hash[*buf.byteslice(5, n).split("\0", -1)]) if n.positive?
        rest = buf.bytesize > stop ? buf.byteslice(stop, buf.bytesize - stop) : nil
        # What is the loader's own (docs/loader-wire.md): the scheme, an
        # empty REMOTE_PORT, the base URI.
        env["rack.url_scheme"] = "https" if env["HTTPS"] == "on"
        rp = env["REMOTE_PORT"]
        env.delete("REMOTE_PORT") if rp&.empty?
        base_len = @base_len
        if base_len.positive?
          path = env["PATH_INFO"]
          if path.start_with?(@base) && (path.bytesize == base_len || path.getbyte(base_len) == 47)
            env["PATH_INFO"] = path.byteslice(base_len, path.bytesize - base_len)
          else
            env["SCRIPT_NAME"] = String.new
          end
        end
        method = env["REQUEST_METHOD"]
        body = read_body(conn, env["CONTENT_LENGTH"], rest, method)
        return [body, nil] unless body.instance_of?(Array)

        input, spool, rest = body
        env["rack.input"] = input
        hijacker.env = env
        hijacker.framed = true
        env["rack.hijack"] = hijacker
        env["rack.response_finished"] = []
        begin
          [respond_framed(conn, env, method == "HEAD", hijacker), rest]
        ensure
          spool&.close!
        end
      rescue EOFError
        [false, nil]
      end

      # respond on ferry-wire/1.
      def respond_framed(conn, env, is_head, hijacker)
        begin
          status, headers, body = @app.call(env)
        rescue ClientGone, SystemExit, SignalException
          raise
        rescue Exception => e # rubocop:disable Lint/RescueException
          app_error(env, e)
          return :hijacked if hijacker.hijacked

          put(conn, framed_error(500, is_head))
          finished(env, nil, nil, e)
          return true
        end
        if hijacker.hijacked
          close_body(env, body)
          finished(env, status, headers, nil)
          return :hijacked
        end
        write_framed(conn, env, status, headers, body, is_head, hijacker)
      end

      def framed_error(code, no_body)
        reason = code == 500 ? "Internal Server Error" : (@reasons[code] || "Error")
        body = "#{code} #{reason}\n"
        head = "#{code} #{reason}\0Content-Type\0text/plain; charset=utf-8\0Content-Length\0#{body.bytesize}"
        out = [head.bytesize].pack("N") << head
        out << [body.bytesize].pack("N") << body unless no_body
        out << WIRE_END
      end

      # write_response on ferry-wire/1. What the app writes as it pleases
      # (a hijack, a 101, a streaming body) goes after the switch marker as
      # HTTP/1.1, by write_response, and the connection closes after it.
      def write_framed(conn, env, status, headers, body, is_head, hijacker)
        error = nil
        head = nil
        switched = false
        begin
          code = status.instance_of?(Integer) ? status : Integer(status.to_s, 10)
          raise ArgumentError, "invalid response status #{status.inspect}" if code < 100 || code > 999

          arr = body_array(body)
          if code == 101 || hijack_header?(headers) || (arr.nil? && !body.respond_to?(:each))
            switched = true
            hijacker.framed = false
            put(conn, WIRE_SWITCH)
            kept = write_response(conn, env, status, headers, body, is_head, false, false)
            return kept == :hijacked ? :hijacked : false
          end
          no_body = is_head || code < 200 || code == 204 || code == 304
          begin
            head, cl, _hijack, connection = build_fhead(code, headers, false)
          rescue Encoding::CompatibilityError
            head, cl, _hijack, connection = build_fhead(code, headers, true)
          end
          cl = content_length(cl) if cl
          keep = true
          if connection
            connection = connection.join(", ") if connection.is_a?(Array)
            keep = false if connection.match?(/close/i)
          end
          if no_body
            put_fhead(conn, head, cl, keep, WIRE_END)
            return keep
          end
          if !body.instance_of?(Array) && body.respond_to?(:to_path)
            kept = write_framed_file(conn, head, body, cl, keep)
            return kept unless kept.nil?
          end
          return write_framed_array(conn, head, arr, cl, keep) if arr

          write_framed_each(conn, head, body, cl, keep)
        rescue ClientGone => e
          error = e
          raise
        rescue SystemExit, SignalException
          raise
        rescue Exception => e # rubocop:disable Lint/RescueException
          raise if switched

          error = e
          app_error(env, e)
          return false if head&.empty? # the head is out: the core sees the body break off

          put(conn, framed_error(500, is_head))
          true
        ensure
          unless switched
            close_body(env, body)
            finished(env, status, headers, error)
          end
        end
      end

      # Whether the app asked for a partial hijack (the rack.hijack header).
      def hijack_header?(headers)
        return headers.key?("rack.hijack") if headers.is_a?(Hash)

        headers.any? { |k, _| k.to_s == "rack.hijack" }
      end

      # build_head on ferry-wire/1: "200 OK", then NUL-separated names and
      # values.
      def build_fhead(code, headers, binary)
        st = @fstatus[code] ||= "#{code} #{@reasons[code] || "Unknown"}".b.freeze
        head = st.dup
        cl, hijack, connection = each_field(headers) do |name, v|
          if binary
            head << "\0" << name.b << "\0" << v.b
          else
            head << "\0" << name << "\0" << v
          end
        end
        [head, cl, hijack, connection]
      end

      # Ends a framed head (its Content-Length, "Connection: close" unless
      # keep), writes it with more, and empties it: an empty head is out.
      def put_fhead(conn, head, length, keep, *more)
        head << "\0Content-Length\0" << length.to_s if length
        head << "\0Connection\0close" unless keep
        put(conn, [head.bytesize].pack("N"), head, *more)
      ensure
        head.clear
      end

      # write_file on ferry-wire/1: the file's length, its blocks as chunks.
      def write_framed_file(conn, head, body, cl, keep)
        path, size = regular_file(body, cl)
        return nil unless path

        put_fhead(conn, head, size, keep)
        left = size
        File.open(path, "rb") do |f|
          buf = String.new(capacity: BODY_CHUNK)
          while left.positive? && f.read(left < BODY_CHUNK ? left : BODY_CHUNK, buf)
            put(conn, [buf.bytesize].pack("N"), buf)
            left -= buf.bytesize
          end
        end
        put(conn, WIRE_END)
        left.zero? ? keep : false
      end

      def write_framed_array(conn, head, arr, cl, keep)
        data = arr.size == 1 ? arr[0] : arr.join
        total = data.bytesize
        if cl && cl != total
          if cl < total
            data = data.byteslice(0, cl)
          else
            keep = false # short of its Content-Length: the core sees it too
          end
          total = cl
        end
        if data.empty?
          put_fhead(conn, head, total, keep, WIRE_END)
        else
          put_fhead(conn, head, total, keep, [data.bytesize].pack("N"), data, WIRE_END)
        end
        keep
      end

      def write_framed_each(conn, head, body, cl, keep)
        nsent = each_piece(body, cl) do |piece, len|
          if head.empty?
            put(conn, [len].pack("N"), piece)
          else
            put_fhead(conn, head, cl, keep, [len].pack("N"), piece)
          end
        end
        if !head.empty?
          keep = false if cl&.positive?
          put_fhead(conn, head, cl || 0, keep, WIRE_END)
        else
          put(conn, WIRE_END)
          keep = false if cl && nsent < cl
        end
        keep
      end

      # Reads the next request head from conn, after what buf holds. Returns
      # [head, the bytes after it or nil], or [what serve_requests returns,
      # nil] when there is no request to serve.
      def read_head(conn, watch, buf)
        while true # rubocop:disable Style/InfiniteLoop
          if buf.nil?
            return [false, nil] if @stopping

            w = wait_request(conn, watch)
            return [w, nil] unless w == true

            buf = conn.read_nonblock(READ_SIZE, exception: false)
            return [false, nil] if buf.nil?

            if buf == :wait_readable
              buf = nil
              next
            end
          end
          b0 = buf.getbyte(0)
          return [:framed, buf] if b0 == WIRE_MAGIC && @wire
          break unless b0 == 13 || b0 == 10

          buf = buf.sub(/\A[\r\n]+/, "") # stray CRLF between requests
          break unless buf.empty?

          buf = nil
        end
        idx = buf.index(HEAD_END)
        while idx.nil?
          return [bad_request(conn), nil] if buf.bytesize > MAX_HEAD

          begin
            more = conn.readpartial(READ_SIZE)
          rescue EOFError
            return [false, nil]
          end
          from = buf.bytesize - 3
          buf << more
          idx = buf.index(HEAD_END, from.negative? ? 0 : from)
        end
        return [bad_request(conn), nil] if idx > MAX_HEAD

        rest = idx + 4
        [buf.byteslice(0, idx), rest < buf.bytesize ? buf.byteslice(rest, buf.bytesize - rest) : nil]
      end

      # Puts the header lines of a head (lines[1..]) into env. Returns
      # [X-Ferry-Client-Addr, X-Ferry-Scheme, whether X-Ferry-Oob-Work came],
      # or nil for a malformed line.
      def header_env(env, lines)
        keys = @keys
        hl = @lines
        peer = nil
        scheme = nil
        oob = false
        i = 1
        n = lines.size
        while i < n
          line = lines[i]
          i += 1
          pair = hl[line]
          if pair
            key = pair[0]
            next unless key

            value = pair[1]
          else
            c = line.index(":")
            return nil if c.nil? || c.zero?

            name = line.byteslice(0, c)
            key = keys[name]
            if key.nil?
              keys.clear if keys.size >= 1024
              key = keys[name] = env_key(name)
            end
            if key
              value = line.byteslice(c + 1, line.bytesize - c - 1)
              value.strip!
            else
              value = nil
            end
            # Most header lines repeat from one request to the next.
            if line.bytesize <= 200 && key != :peer && key != "HTTP_COOKIE" && key != "HTTP_AUTHORIZATION"
              hl.clear if hl.size >= 2048
              hl[line] = [key, value&.freeze].freeze
            end
            next unless key
          end
          if key.instance_of?(Symbol)
            if key == :peer
              peer = value
            elsif key == :scheme
              scheme = value
            else
              oob = true # the core's request: see serve_requests
            end
            next
          end
          value = value.dup if value.frozen?
          old = env[key]
          env[key] = if old.nil?
                       value
                     elsif key == "HTTP_COOKIE"
                       "#{old}; #{value}"
                     else
                       "#{old}, #{value}"
                     end
        end
        [peer, scheme, oob]
      end

      # The rest of the env: scheme, peer, server, request line, path.
      def request_env(env, method, target, proto, peer, scheme)
        https = scheme == "https"
        if https
          env["rack.url_scheme"] = "https"
          env["HTTPS"] = "on"
        end
        if peer
          pv = @peers[peer]
          unless pv
            @peers.clear if @peers.size >= 512
            pv = @peers[peer] = split_peer(peer)
          end
          env["REMOTE_ADDR"] = pv[0]
          env["REMOTE_PORT"] = pv[1] if pv[1]
        end
        host = env["HTTP_HOST"] || ""
        hosts = https ? @hostss : @hosts
        hv = hosts[host]
        unless hv
          hosts.clear if hosts.size >= 512
          hv = hosts[host] = split_host(host, https)
        end
        env["SERVER_NAME"] = hv[0]
        env["SERVER_PORT"] = hv[1]
        env["REQUEST_METHOD"] = method
        env["SERVER_PROTOCOL"] = proto
        env["REQUEST_URI"] = target
        target = origin_form(target) unless target.getbyte(0) == 47 # '/'
        q = target.index("?")
        if q
          path = target.byteslice(0, q)
          env["QUERY_STRING"] = target.byteslice(q + 1, target.bytesize - q - 1)
        else
          path = target.dup
          env["QUERY_STRING"] = String.new
        end
        base_len = @base_len
        if base_len.positive?
          base = @base
          if path.start_with?(base) && (path.bytesize == base_len || path.getbyte(base_len) == 47)
            path = path.byteslice(base_len, path.bytesize - base_len)
          else
            env["SCRIPT_NAME"] = ""
          end
        end
        env["PATH_INFO"] = path
        return unless (up = env["HTTP_UPGRADE"])

        env["rack.protocol"] = up.split(",").map!(&:strip)
      end

      # Reads the request body of Content-Length clen; buf holds what came
      # after the head. Returns [rack.input, the spool file or nil, the bytes
      # after the body or nil], or what serve_requests returns when there is
      # no body to serve.
      def read_body(conn, clen, buf, method)
        if clen.nil?
          len = 0
        elsif clen.match?(/\A\d{1,18}\z/)
          len = clen.to_i
        else
          return bad_request(conn)
        end
        return [StringIO.new(EMPTY_BODY), nil, buf] if len.zero?

        have = buf ? buf.bytesize : 0
        if have >= len
          return [StringIO.new(have == len ? buf : buf.byteslice(0, len)), nil, have == len ? nil : buf.byteslice(len, have - len)]
        end

        if len <= SMALL_BODY
          data = buf || String.new(capacity: len)
          while data.bytesize < len
            begin
              data << conn.readpartial(len - data.bytesize)
            rescue EOFError
              return false # the body never came: nothing to answer
            end
          end
          return [StringIO.new(data), nil, nil]
        end
        input = spool_body(conn, buf, len)
        return false unless input

        if input == :error
          put(conn, error_response(500, false, method == "HEAD"))
          return false
        end
        [input, input, nil]
      end

      # Large bodies go to an unlinked temp file so that rack.input stays
      # rewindable without holding the body in memory.
      # Returns the file, nil if the peer hung up, :error if the disk failed.
      def spool_body(conn, buf, len)
        begin
          tf = Tempfile.new("ferry-body")
          tf.binmode
          tf.unlink
          tf.write(buf) if buf
        rescue SystemCallError, IOError => e
          tf&.close!
          RackLoader.log("cannot spool a #{len}-byte request body in #{Dir.tmpdir}: #{e.class}: #{e.message}")
          return :error
        end
        left = len - (buf ? buf.bytesize : 0)
        chunk = String.new(capacity: BODY_CHUNK)
        while left.positive?
          begin
            conn.readpartial(left < BODY_CHUNK ? left : BODY_CHUNK, chunk)
          rescue EOFError, SystemCallError, IOError
            tf.close!
            return nil
          end
          begin
            tf.write(chunk)
          rescue SystemCallError, IOError => e
            tf.close!
            RackLoader.log("cannot spool a #{len}-byte request body in #{Dir.tmpdir}: #{e.class}: #{e.message}")
            return :error
          end
          left -= chunk.bytesize
        end
        tf.rewind
        tf
      end

      def env_key(name)
        return false if name.empty? || name.match?(/[\s_]/)

        k = name.upcase.tr("-", "_")
        return k.freeze if k == "CONTENT_TYPE" || k == "CONTENT_LENGTH"
        return :peer if k == "X_FERRY_CLIENT_ADDR"
        return :scheme if k == "X_FERRY_SCHEME"
        return :oob if k == "X_FERRY_OOB_WORK"
        return false if k.start_with?("X_FERRY_")

        "HTTP_#{k}".force_encoding(Encoding::UTF_8).freeze
      end

      def split_host(host, https)
        default = https ? "443" : "80"
        return ["localhost", default].freeze if host.empty?

        if host.start_with?("[")
          i = host.index("]")
          return [host.dup.freeze, default].freeze unless i

          name = host[0..i]
          rest = host[(i + 1)..]
          port = rest.start_with?(":") ? rest[1..] : ""
        else
          i = host.rindex(":")
          if i
            name = host[0, i]
            port = host[(i + 1)..]
          else
            name = host
            port = ""
          end
        end
        [name.dup.freeze, (port.empty? ? default : port).dup.freeze].freeze
      end

      def split_peer(addr)
        if addr.start_with?("[")
          i = addr.index("]")
          if i
            rest = addr[(i + 1)..]
            return [addr[1, i - 1].freeze, rest.start_with?(":") ? rest[1..].freeze : nil].freeze
          end
        end
        i = addr.rindex(":")
        ip = i ? addr[0, i] : nil
        return [addr.dup.freeze, nil].freeze if ip.nil? || ip.include?(":") # no port, or bare IPv6

        [ip.freeze, addr[(i + 1)..].freeze].freeze
      end

      # The origin form of an absolute-form request target.
      def origin_form(target)
        i = target.index("://")
        return target unless i&.positive?

        j = target.index("/", i + 3)
        q = target.index("?", i + 3)
        if j && (q.nil? || j < q)
          target[j..]
        else
          q ? "/#{target[q..]}" : "/"
        end
      end

      def status_line(code)
        line = @status_lines[code]
        return line if line

        reason = @reasons[code] || "Unknown"
        @status_lines[code] = "HTTP/1.1 #{code} #{reason}\r\n".b.freeze
      end

      def app_error(env, exc)
        RackLoader.log("error in application (#{env["REQUEST_METHOD"]} #{env["PATH_INFO"]}):\n" \
                       "#{exc.full_message(highlight: false)}")
      end

      def error_response(code, keep, no_body)
        reason = code == 500 ? "Internal Server Error" : (@reasons[code] || "Error")
        body = "#{code} #{reason}\n"
        head = "HTTP/1.1 #{code} #{reason}\r\nContent-Type: text/plain; charset=utf-8\r\n" \
               "Content-Length: #{body.bytesize}\r\n#{keep ? "" : CLOSE_LINE}\r\n"
        no_body ? head : head + body
      end

      def put(conn, *parts)
        conn.write(*parts)
      rescue SystemCallError, IOError
        raise ClientGone
      end

      # Runs the app for one request and writes its response. Returns true
      # to keep the connection, false to close it, :hijacked if the app has
      # it now.
      def respond(conn, env, is_head, keep, http10, hijacker)
        begin
          status, headers, body = @app.call(env)
        rescue ClientGone, SystemExit, SignalException
          raise
        rescue Exception => e # rubocop:disable Lint/RescueException
          app_error(env, e)
          return :hijacked if hijacker.hijacked

          put(conn, error_response(500, keep, is_head))
          finished(env, nil, nil, e)
          return keep
        end
        if hijacker.hijacked
          close_body(env, body)
          finished(env, status, headers, nil)
          return :hijacked
        end
        write_response(conn, env, status, headers, body, is_head, keep, http10)
      end

      def close_body(env, body)
        body.close if !body.instance_of?(Array) && body.respond_to?(:close)
      rescue ClientGone, SystemExit, SignalException
        raise
      rescue Exception => e # rubocop:disable Lint/RescueException
        RackLoader.log("error in close() of the response body:")
        app_error(env, e)
      end

      def finished(env, status, headers, error)
        callbacks = env["rack.response_finished"]
        return if !callbacks.is_a?(Array) || callbacks.empty?

        callbacks.reverse_each do |cb|
          cb.call(env, status, headers, error)
        rescue Exception => e # rubocop:disable Lint/RescueException
          raise if e.is_a?(SystemExit) || e.is_a?(SignalException)

          app_error(env, e)
        end
      end

      # What a response header name is to the loader: :cl, :connection,
      # :drop (framing the loader owns, or rack.* for the server), :hijack,
      # :bad (not a token), or :plain.
      def name_kind(name)
        kind = @name_kinds[name]
        return kind if kind

        kind = case name.downcase
               when "content-length" then :cl
               when "connection" then :connection
               when "transfer-encoding", "keep-alive" then :drop
               when "rack.hijack" then :hijack
               when /\Arack\./ then :drop
               when /\A[!#$%&'*+\-.^_`|~0-9a-z]+\z/ then :plain
               else :bad
               end
        @name_kinds.clear if @name_kinds.size >= 1024
        @name_kinds[name.frozen? ? name : name.dup.freeze] = kind
      end

      # The head of the response up to the framing lines, from the app's
      # headers. Returns [head, content-length value, rack.hijack, Connection].
      def build_head(code, headers, binary)
        head = status_line(code).dup
        cl, hijack, connection = each_field(headers) do |name, v|
          if binary
            head << name.b << COLON << v.b << CRLF
          else
            head << name << COLON << v << CRLF
          end
        end
        [head, cl, hijack, connection]
      end

      # The app's response headers as build_head and build_fhead write
      # them: yields each field line's name and value, checked (CR, LF and
      # NUL are invalid in a value: RFC 9110 section 5.5), and returns
      # [content-length value, rack.hijack, Connection], which the framing
      # writes itself.
      def each_field(headers)
        cl = nil
        hijack = nil
        connection = nil
        headers.each do |name, value|
          name = name.to_s unless name.instance_of?(String)
          case name_kind(name)
          when :plain
            nil
          when :cl
            cl = value
            next
          when :connection
            connection = value
            next
          when :hijack
            hijack = value
            next
          when :drop
            next
          else
            raise ArgumentError, "invalid response header name #{name.inspect}"
          end
          next if value.nil?

          if value.instance_of?(String) && !value.include?("\n")
            # Any CR is an injection (a LF would have been a line separator).
            raise ArgumentError, "CR or NUL in response header #{name}" if value.include?("\r") || value.include?("\0")

            yield name, value
          else
            # Rack 3: an Array of values; Rack 2: values separated by "\n".
            values = value.is_a?(Array) ? value : value.to_s.split("\n")
            values.each do |v|
              v = v.to_s
              raise ArgumentError, "CR, LF or NUL in response header #{name}" if v.include?("\r") || v.include?("\n") || v.include?("\0")

              yield name, v
            end
          end
        end
        [cl, hijack, connection]
      end

      # Writes the app's response. Returns true to keep the connection,
      # false to close it, :hijacked if the app has it now. The head is
      # emptied as it goes out (put_head): after that, an error can only
      # close the connection, since a second response would be garbage on
      # the wire.
      def write_response(conn, env, status, headers, body, is_head, keep, http10)
        error = nil
        head = nil
        begin
          code = status.instance_of?(Integer) ? status : Integer(status.to_s, 10)
          raise ArgumentError, "invalid response status #{status.inspect}" if code < 100 || code > 999

          no_body = is_head || code < 200 || code == 204 || code == 304
          begin
            head, cl, hijack, connection = build_head(code, headers, false)
          rescue Encoding::CompatibilityError
            head, cl, hijack, connection = build_head(code, headers, true)
          end
          cl = content_length(cl) if cl
          if connection
            connection = connection.join(", ") if connection.is_a?(Array)
            keep = false if connection.match?(/close/i)
          end
          return write_kept(conn, env, head, body, hijack, connection) if hijack || code == 101

          if !no_body && !body.instance_of?(Array) && body.respond_to?(:to_path)
            kept = write_file(conn, head, body, cl, keep)
            return kept unless kept.nil?
          end
          arr = body_array(body)
          if no_body && (arr || body.respond_to?(:each) || body.respond_to?(:call))
            # Not the length of a HEAD body: it may be empty (Rack::Head).
            put_head(conn, end_head(head, cl, keep))
            return keep
          end
          return write_array(conn, head, arr, cl, keep) if arr

          if body.respond_to?(:each)
            keep = false if cl.nil? && http10 # the body ends with the connection
            return write_each(conn, head, body, cl, keep, http10)
          end
          return write_stream(conn, env, head, body, cl, keep, http10) if body.respond_to?(:call)

          raise TypeError, "the response body (#{body.class}) responds to neither each nor call"
        rescue ClientGone => e
          error = e
          raise
        rescue SystemExit, SignalException
          raise
        rescue Exception => e # rubocop:disable Lint/RescueException
          error = e
          app_error(env, e)
          return false if head&.empty? # the head is out

          put(conn, error_response(500, keep, is_head))
          keep
        ensure
          close_body(env, body)
          finished(env, status, headers, error)
        end
      end

      # The app's Content-Length header as an Integer.
      def content_length(cl)
        cl = cl.first if cl.is_a?(Array)
        cl = cl.to_s
        raise ArgumentError, "invalid Content-Length #{cl.inspect}" unless cl.match?(/\A\d{1,18}\z/)

        cl.to_i
      end

      # Ends a response head: its framing (Content-Length: length, or
      # chunked), "Connection: close" unless keep, and the blank line.
      def end_head(head, length, keep, chunked = false)
        if length
          head << CL_LINE << length.to_s << CRLF
        elsif chunked
          head << CHUNKED_LINE
        end
        head << CLOSE_LINE unless keep
        head << CRLF
      end

      # Writes the head (and more) and empties it: an empty head has gone
      # out (see write_response).
      def put_head(conn, head, *more)
        put(conn, head, *more)
      ensure
        head.clear
      end

      # The app keeps the connection: a partial hijack, or a 101.
      def write_kept(conn, env, head, body, hijack, connection)
        head << "Connection: " << connection.to_s << CRLF if connection
        head << CRLF
        put_head(conn, head)
        if hijack
          hijack.call(conn)
          return :hijacked
        end
        if body.respond_to?(:call) && !body.respond_to?(:each)
          body.call(BodyStream.new(conn, env["rack.input"], :raw, nil))
          return :hijacked
        end
        false
      end

      # A body that is a file, sent from it; nil if it is not a regular
      # file of the announced length after all.
      def write_file(conn, head, body, cl, keep)
        path, size = regular_file(body, cl)
        return nil unless path

        put_head(conn, end_head(head, size, keep))
        copied = begin
          File.open(path, "rb") { |f| IO.copy_stream(f, conn, size) }
        rescue Errno::EPIPE, Errno::ECONNRESET, IOError
          raise ClientGone
        end
        copied == size ? keep : false
      end

      # [path, size] of a body's to_path when it names a regular file whose
      # size agrees with the Content-Length the app set (if any); nil when
      # the body must be iterated instead.
      def regular_file(body, cl)
        path = body.to_path
        st = path && (File.stat(path) rescue nil) # rubocop:disable Style/RescueModifier
        return nil unless st&.file? && (cl.nil? || cl == st.size)

        [path, st.size]
      end

      # The body as an Array of its pieces, if it is one (or has one).
      def body_array(body)
        if body.instance_of?(Array)
          body
        elsif body.respond_to?(:to_ary)
          a = body.to_ary
          a.is_a?(Array) ? a : nil
        end
      end

      # All of the body at once.
      def write_array(conn, head, arr, cl, keep)
        if arr.size == 1
          total = arr[0].bytesize
        else
          total = 0
          arr.each { |s| total += s.bytesize }
        end
        if cl && cl != total
          data = arr.size == 1 ? arr[0].b : arr.map(&:b).join
          if cl < total
            data = data.byteslice(0, cl)
          else
            keep = false # short of its Content-Length
          end
          arr = [data]
          total = cl
        end
        end_head(head, cl || total, keep)
        if arr.size == 1
          data = arr[0]
          begin
            if data.bytesize <= 16_384
              conn.write(head << data)
            else
              conn.write(head, data)
            end
          rescue SystemCallError, IOError
            raise ClientGone
          rescue Encoding::CompatibilityError
            put(conn, data) # head is out: only the body is left
          ensure
            head.clear
          end
        elsif arr.size <= 32
          put_head(conn, head, *arr)
        else
          put_head(conn, head)
          arr.each_slice(32) { |slice| put(conn, *slice) }
        end
        keep
      end

      # A body to iterate: streamed as it comes, the head with the first
      # piece.
      # Iterates the app's body for write_each and write_framed_each:
      # yields each non-empty piece and its length, cut at cl if the app
      # gave one, and returns the bytes yielded.
      def each_piece(body, cl)
        nsent = 0
        body.each do |piece|
          raise TypeError, "response body yielded #{piece.class}, not a String" unless piece.is_a?(String)

          len = piece.bytesize
          next if len.zero?

          if cl
            room = cl - nsent
            next if room <= 0

            if len > room
              piece = piece.byteslice(0, room)
              len = room
            end
          end
          nsent += len
          yield piece, len
        end
        nsent
      end

      def write_each(conn, head, body, cl, keep, http10)
        chunked = cl.nil? && !http10
        nsent = each_piece(body, cl) do |piece, len|
          if head.empty?
            chunked ? put(conn, len.to_s(16), CRLF, piece, CRLF) : put(conn, piece)
          else
            end_head(head, cl, keep, chunked)
            chunked ? put_head(conn, head, len.to_s(16), CRLF, piece, CRLF) : put_head(conn, head, piece)
          end
        end
        if !head.empty?
          keep = false if cl&.positive?
          put_head(conn, end_head(head, cl || 0, keep))
        elsif chunked
          put(conn, LAST_CHUNK)
        elsif cl && nsent < cl
          keep = false # short of its Content-Length
        end
        keep
      end

      # A Rack 3 streaming body.
      def write_stream(conn, env, head, body, cl, keep, http10)
        if cl
          mode = :fixed
        elsif http10
          mode = :raw
          keep = false
        else
          mode = :chunked
        end
        put_head(conn, end_head(head, cl, keep, mode == :chunked))
        stream = BodyStream.new(conn, env["rack.input"], mode, cl)
        body.call(stream)
        stream.close unless stream.closed?
        stream.short? ? false : keep
      end
    end

    # FERRY_SPAWN_METHOD=smart: the app is loaded once; workers are forks.
    class Preloader
      def initialize(app, control, sock_path, threads, base, lifeline)
        @app = app
        @control = control
        @sock_path = sock_path
        @threads = threads
        @base = base
        @lifeline = lifeline
        @stopping = false
        @wake_r, @wake_w = IO.pipe
      end

      def run(status)
        trap("CHLD") { reap }
        trap("TERM") do
          @stopping = true
          @wake_w.write_nonblock(".", exception: false)
        end
        RackLoader.report(status, [["status", "ready"], ["preloader", true]])
        watch = [@control, @wake_r]
        until @stopping
          conn = @control.accept_nonblock(exception: false)
          if conn == :wait_readable
            IO.select(watch)
            next
          end
          begin
            handle(conn)
          rescue StandardError => e
            RackLoader.log("spawn failed: #{e.class}: #{e.message}")
          ensure
            conn.close unless conn.closed?
          end
        end
      ensure
        begin
          @control.close
          File.unlink(@sock_path)
        rescue StandardError
          nil
        end
      end

      private

      def reap
        loop do
          break unless Process.waitpid(-1, Process::WNOHANG)
        end
      rescue Errno::ECHILD
        nil
      end

      # Reads one spawn command and its three fds, and forks the worker.
      def handle(conn)
        data = String.new
        ios = []
        until data.include?("\n")
          break unless IO.select([conn], nil, nil, 10)

          msg, _addr, _flags, *ctls = conn.recvmsg(4096, 0, nil, scm_rights: true)
          ctls.each { |c| ios.concat(c.unix_rights || []) if c.cmsg_is?(:SOCKET, :RIGHTS) }
          break if msg.nil? || msg.empty?

          data << msg
        end
        begin
          cmd = RackLoader.json_field(data, "command")
          sock = RackLoader.json_field(data, "socket")
          if cmd != "spawn" || sock.nil? || sock.empty? || ios.size != 3
            RackLoader.log("bad spawn command #{data.inspect} with #{ios.size} fds (want 3)")
            return
          end
          out, err, status = ios
          pid = fork { worker(conn, sock, out, err, status) }
          RackLoader.log("spawned worker pid #{pid} on #{sock}") if ENV["FERRY_DEBUG"]
        ensure
          ios.each do |io|
            io.close
          rescue StandardError
            nil
          end
        end
      end

      # In the child.
      def worker(conn, sock, out, err, status)
        begin
          @control.close
          conn.close
          @wake_r.close
          @wake_w.close
          Process.setsid
          %w[TERM CHLD INT HUP QUIT USR1 USR2].each { |sig| trap(sig, "DEFAULT") }
          RackLoader.install_quit # backtraces on SIGQUIT, as in direct spawning
          Random.srand
          $stdout.reopen(out)
          $stderr.reopen(err)
          out.close
          err.close
          $stdout.sync = true
          $stderr.sync = true
          status.close_on_exec = true
          RackLoader.watch_lifeline(@lifeline) # threads do not survive fork
          listener = RackLoader.listen(sock)
          Hooks.call_event!(:starting_worker_process, true) # the app reconnects its databases, etc.
          server = Server.new(@app, listener, sock, @threads, @base)
          server.install_signals
          Hooks.call_event(:after_installing_signal_handlers)
        rescue Exception => e # rubocop:disable Lint/RescueException
          summary, details = RackLoader.describe(e)
          RackLoader.report(status, [["status", "error"], ["summary", summary], ["details", details]])
          exit!(1)
        end
        RackLoader.install_backtraces(status)
        RackLoader.report(status, RackLoader.ready_pairs(sock, @threads), keep: true)
        server.run
        Hooks.call_event(:stopping_worker_process)
        exit(0)
      end
    end
  end
end

FerryLoader::RackLoader.main if $PROGRAM_NAME == __FILE__
