# frozen_string_literal: true

# Test fixture: an app written for Passenger, unchanged: its hooks go through
# PhusionPassenger.on_event, guarded by `if defined?(PhusionPassenger)`.
#
#   /count      JSON: requests the app has seen (this one included), runs of
#               the :oob_work hook, the `forked` arguments :starting_worker_process
#               got and the pid it ran in, :starting_request_handler_thread
#               runs, whether an unknown event name raised ArgumentError
#   /fail-next  the next out-of-band work raises
#   anything else  404
#
# :stopping_worker_process writes "oob-passenger fixture: stopping PID" on
# stderr.

require "json"

STATE = { "requests" => 0, "oob" => 0, "starting" => [], "starting_pid" => 0, "handler_threads" => 0,
          "unknown_event_raises" => false, "fail" => false }

if defined?(PhusionPassenger)
  # What ActionCable apps set under Passenger.
  PhusionPassenger.advertised_concurrency_level = 0

  PhusionPassenger.on_event(:oob_work) do
    STATE["oob"] += 1
    if STATE["fail"]
      STATE["fail"] = false
      raise ArgumentError, "passenger hook failed on purpose"
    end
  end

  PhusionPassenger.on_event(:starting_worker_process) do |forked|
    STATE["starting"] << forked
    STATE["starting_pid"] = Process.pid
  end

  PhusionPassenger.on_event(:stopping_worker_process) do
    $stderr.write("oob-passenger fixture: stopping #{Process.pid}\n")
  end

  PhusionPassenger.on_event(:starting_request_handler_thread) do
    STATE["handler_threads"] += 1
  end

  begin
    PhusionPassenger.on_event(:no_such_event) { nil }
  rescue ArgumentError
    STATE["unknown_event_raises"] = true
  end
end

run(lambda do |env|
  STATE["requests"] += 1
  case env["PATH_INFO"]
  when "/count"
    body = JSON.generate(STATE.reject { |k, _| k == "fail" }.merge("pid" => Process.pid,
                                                                    "concurrency_level" => PhusionPassenger.advertised_concurrency_level))
    [200, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
  when "/fail-next"
    STATE["fail"] = true
    [200, { "content-type" => "text/plain" }, ["the next hook fails"]]
  else
    [404, { "content-type" => "text/plain" }, ["not found"]]
  end
end)
