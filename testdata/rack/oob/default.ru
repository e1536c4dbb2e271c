# frozen_string_literal: true

# Test fixture: no out-of-band hook, so the loader's default (GC.start) runs.
# /count tells how many major collections there were and whether the loader
# defined Ferry and PhusionPassenger before config.ru.

require "json"

requests = [0]
ferry_api = defined?(Ferry) && Ferry.respond_to?(:on_out_of_band_work) ? true : false
passenger_api = defined?(PhusionPassenger) && PhusionPassenger.respond_to?(:on_event) ? true : false

run(lambda do |_env|
  requests[0] += 1
  body = JSON.generate("requests" => requests[0], "major_gc_count" => GC.stat(:major_gc_count),
                       "ferry_api" => ferry_api, "passenger_api" => passenger_api)
  [200, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
end)
