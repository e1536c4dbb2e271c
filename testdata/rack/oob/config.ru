# frozen_string_literal: true

# Test fixture: out-of-band work and SIGQUIT backtraces under the Rack loader.
#
# Two out-of-band hooks are registered through the loader's Ferry module (a
# block and a callable). Endpoints, by PATH_INFO:
#
#   /count          JSON: requests the app has seen (this one included), runs
#                   of each hook, the thread the last hook ran in, the pid
#   /ask            a response asking the core for out-of-band work
#                   (X-Ferry-Request-OOB-Work: true)
#   /ask-passenger  the same with Passenger's header (!~Request-OOB-Work)
#   /fail-next      the next out-of-band work: the first hook raises
#   /sleep?s=N&release=PATH
#                   writes "oob fixture: asleep" on stderr, then sleeps in
#                   OobFixture.stuck_in_sleep for up to N seconds, or until
#                   the file PATH exists; answers "awake"
#   anything else   404

require "json"

module OobFixture
  STATE = { "requests" => 0, "hooks" => 0, "hooks2" => 0, "hook_thread" => "", "fail" => false }

  # The second hook: a callable, not a block.
  class SecondHook
    def call
      STATE["hooks2"] += 1
    end
  end

  module_function

  def stuck_in_sleep(seconds, release)
    # Said from in here: a SIGQUIT after it finds this frame on the stack.
    $stderr.write("oob fixture: asleep\n")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      break if release && File.exist?(release)

      sleep(release ? 0.01 : seconds)
    end
  end

  def reply(body, status = 200, extra = {})
    [status, { "content-type" => "text/plain", "content-length" => body.bytesize.to_s }.merge(extra), [body]]
  end

  def query(env)
    env["QUERY_STRING"].to_s.split("&").to_h { |pair| pair.split("=", 2).map { |s| Rack::Utils.unescape(s.to_s) } }
  end
end

raise "no Ferry module before config.ru" unless defined?(Ferry) && Ferry.respond_to?(:on_out_of_band_work)

hook = Ferry.on_out_of_band_work do
  OobFixture::STATE["hooks"] += 1
  OobFixture::STATE["hook_thread"] = Thread.current.name.to_s
  if OobFixture::STATE["fail"]
    OobFixture::STATE["fail"] = false
    raise "hook failed on purpose"
  end
end
raise "Ferry.on_out_of_band_work did not return the hook" unless hook.is_a?(Proc)

Ferry.on_out_of_band_work(OobFixture::SecondHook.new)

run(lambda do |env|
  state = OobFixture::STATE
  state["requests"] += 1
  case env["PATH_INFO"]
  when "/count"
    OobFixture.reply(JSON.generate(state.reject { |k, _| k == "fail" }.merge("pid" => Process.pid)))
  when "/ask"
    OobFixture.reply("asked", 200, "X-Ferry-Request-OOB-Work" => "true")
  when "/ask-passenger"
    OobFixture.reply("asked", 200, "!~Request-OOB-Work" => "true")
  when "/fail-next"
    state["fail"] = true
    OobFixture.reply("the next hook fails")
  when "/sleep"
    q = OobFixture.query(env)
    OobFixture.stuck_in_sleep(Float(q.fetch("s", "60")), q["release"])
    OobFixture.reply("awake")
  else
    OobFixture.reply("not found", 404)
  end
end)
