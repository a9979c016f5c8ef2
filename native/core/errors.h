// The error funnel: every c10::Error / std::exception raised by libtorch becomes a JS Error with
// libtorch's message (without its C++ backtrace), never an abort.
#pragma once
#include <c10/util/Exception.h>
#include <napi.h>

#include <string>

namespace vicinity {

std::string clean_message(const c10::Error& e);

// Runs fn() and converts any C++ exception into a JS exception on env.
template <typename F>
auto guarded(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, clean_message(e));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// A TypeError for bad arguments from JS.
[[noreturn]] inline void throw_type(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

}  // namespace vicinity
