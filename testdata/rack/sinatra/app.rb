# frozen_string_literal: true

# Test fixture: a small modular Sinatra app.

require "sinatra/base"

class App < Sinatra::Base
  set :show_exceptions, false # Sinatra's own 500 page, not the debug one
  set :raise_errors, false
  set :dump_errors, true # the backtrace goes to rack.errors (stderr)

  get "/" do
    "hello from sinatra"
  end

  post "/form" do
    "hello #{params["name"]}"
  end

  get "/stream" do
    n = Integer(params.fetch("n", "3"), 10)
    delay = Float(params.fetch("delay", "0"))
    content_type "text/plain"
    stream do |out|
      n.times do |i|
        sleep(delay) if i.positive?
        out << "sinatra chunk #{i}\n"
      end
    end
  end

  get "/error" do
    raise "boom from sinatra"
  end

  get "/pid" do
    Process.pid.to_s
  end

  error do
    "sinatra error: #{env["sinatra.error"].message}"
  end
end
