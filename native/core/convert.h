// Conversions between JS values and libtorch values: dtype and device names, typed arrays, and
// IValues by schema argument type (the generic op call's arguments and results).
#pragma once
#include <ATen/Tensor.h>
#include <ATen/core/function_schema.h>
#include <ATen/core/ivalue.h>
#include <napi.h>

#include <string>

namespace vicinity {

c10::ScalarType dtype_from_name(Napi::Env env, const std::string& name);
const char* dtype_name(c10::ScalarType type);
c10::Device device_from_name(Napi::Env env, const std::string& name);
std::string device_name(const c10::Device& device);

// The typed array that holds a dtype's elements on the JS side (bfloat16/float16 read back as float32).
c10::ScalarType readback_dtype(c10::ScalarType type);
// Copies a contiguous CPU tensor of a readback dtype into a fresh typed array.
Napi::Value typed_array_from(Napi::Env env, const at::Tensor& contiguous_cpu);
// A CPU tensor of `type` and `shape` holding a copy of the typed array's bytes.
at::Tensor tensor_from_typed_array(Napi::Env env, const Napi::TypedArray& data, at::IntArrayRef shape, c10::ScalarType type);

std::vector<int64_t> int_list(Napi::Env env, const Napi::Value& value, const char* what);

c10::IValue to_ivalue(Napi::Env env, const Napi::Value& value, const c10::Argument& argument);
Napi::Value from_ivalue(Napi::Env env, const c10::IValue& value);

}  // namespace vicinity
