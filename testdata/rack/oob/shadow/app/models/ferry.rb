# frozen_string_literal: true

# The app's own Ferry, a class (a model, say): the loader must not have
# defined a module of that name before.
class Ferry
  def self.describe
    "the app's own Ferry"
  end
end
