"""The catalogue: one row per known failure, most specific first (the first entry whose repair applies wins).

To add an entry: write `recognise` (certain, from the log alone) and `repair` (libcst edits that keep the file's
formatting, or a NoFix with the reason) in a module of this package, add a row here, and add its test case as
tests/catalogue_cases/<case>/ (a small script that fails with exactly that error on the installed versions); the
catalogue test runs every row's case, so a row without one fails the suite.
"""

from __future__ import annotations

from nightlab.agent.policy.catalogue import (
    apis,
    compiler,
    devices,
    hf_params,
    loaders,
    network,
    outside_writes,
    packages,
    pandas_removed,
    removed_data,
    resources,
    sklearn_params,
    state_dicts,
)
from nightlab.agent.policy.catalogue import torch_load as tl
from nightlab.agent.policy.catalogue import torch_removed as trm
from nightlab.agent.policy.catalogue.entry import Entry

CATALOGUE: tuple[Entry, ...] = (
    Entry("torch_load_weights_only", "UnpicklingError: Weights only load failed (torch.load, torch >= 2.6)",
          "weights_only=False on that torch.load, only for a file the repository ships or writes itself; otherwise "
          "stop, saying why", tl.recognise_weights_only, tl.repair_weights_only, case="torch_load_weights_only"),
    Entry("cuda_checkpoint_on_cpu", "RuntimeError: Attempting to deserialize object on a CUDA device",
          "map_location chosen at run time (the CPU where there is no GPU)", devices.recognise_cuda_checkpoint,
          devices.repair_portable_device, case="cuda_checkpoint_on_cpu"),
    Entry("cuda_on_cpu", "RuntimeError: Found no NVIDIA driver / Torch not compiled with CUDA enabled",
          ".cuda() -> .to(device), \"cuda\" -> \"cuda\" if torch.cuda.is_available() else \"cpu\", map_location, "
          "torch.cuda.synchronize() guarded", devices.recognise_no_cuda, devices.repair_portable_device,
          case="cuda_on_cpu"),
    Entry("dataloader_workers", "DataLoader worker killed by a bus error / unable to allocate shared memory(shm)",
          "num_workers=0 (and the options that need workers dropped)", loaders.recognise_loader_workers,
          loaders.repair_loader_workers, case="dataloader_workers"),
    Entry("torch_compile", "InvalidCxxCompiler: No working C++ compiler found / Cannot find a working triton "
          "installation (torch.compile)", "the model run without torch.compile (the call and @torch.compile "
          "dropped, torch_compile=True -> False): slower steps, the same model",
          compiler.recognise_compile, compiler.repair_compile, case="torch_compile"),
    Entry("numpy_removed_alias", "AttributeError: module 'numpy' has no attribute 'float' (np.int, np.product, ...)",
          "every removed alias replaced by what it stood for (float, np.prod, np.nan, ...)",
          apis.recognise_numpy_alias, apis.repair_numpy_alias, case="numpy_removed_alias"),
    Entry("pandas_append", "AttributeError: 'DataFrame' object has no attribute 'append' (or 'iteritems')",
          "pd.concat([df, row]) (a dict or Series as a one-row frame); .iteritems() -> .items()",
          apis.recognise_pandas_append, apis.repair_pandas_append, case="pandas_append"),
    Entry("pandas_removed", "TypeError: read_csv() got an unexpected keyword argument 'delim_whitespace' / "
          "fillna(method=) / 'DataFrame' object has no attribute 'applymap' (mad, bool, ravel, is_monotonic)",
          "every pandas 3 removal rewritten at once: sep=r\"\\s+\", on_bad_lines=, .ffill() / .bfill(), .map(), "
          ".squeeze(\"columns\"), lineterminator=, .is_monotonic_increasing; .mad() / .bool() / .ravel() as "
          "expressions at the traceback's line", pandas_removed.recognise_pandas_removed,
          pandas_removed.repair_pandas_removed, case="pandas_removed"),
    Entry("torch_cuda_amp", "AttributeError: module 'torch.cuda' has no attribute 'amp'",
          "torch.cuda.amp.autocast/GradScaler(...) -> torch.amp.autocast/GradScaler(\"cuda\", ...)",
          apis.recognise_torch_cuda_amp, apis.repair_torch_cuda_amp, case="torch_cuda_amp"),
    Entry("functional_sigmoid_tanh", "AttributeError: module 'torch.nn.functional' has no attribute 'sigmoid'",
          "F.sigmoid / F.tanh -> torch.sigmoid / torch.tanh", apis.recognise_functional, apis.repair_functional,
          case="functional_sigmoid_tanh"),
    Entry("autograd_variable", "ImportError: cannot import name 'Variable' / unexpected keyword argument 'volatile'",
          "Variable(x) -> x (x.requires_grad_() where it asked for gradients), volatile= dropped",
          apis.recognise_variable, apis.repair_variable, case="autograd_variable"),
    Entry("torch_six", "ModuleNotFoundError: No module named 'torch._six' (removed in torch 2.0)",
          "each imported name bound to what it stood for (inf -> torch.inf, string_classes -> (str, bytes), "
          "container_abcs -> collections.abc)", trm.recognise_torch_six, trm.repair_torch_six, case="torch_six"),
    Entry("scheduler_verbose", "TypeError: StepLR.__init__() got an unexpected keyword argument 'verbose'",
          "verbose= dropped from every learning-rate scheduler (it only printed the rate)",
          trm.recognise_scheduler_verbose, trm.repair_scheduler_verbose, case="scheduler_verbose"),
    Entry("zero_dim_index", "IndexError: invalid index of a 0-dim tensor (loss.data[0])",
          "loss.data[0] -> loss.item()", apis.recognise_zero_dim_index, apis.repair_zero_dim_index,
          case="zero_dim_index"),
    Entry("sklearn_renamed", "TypeError: X.__init__() got an unexpected keyword argument / InvalidParameterError",
          "the renamed keyword or value (sparse -> sparse_output, base_estimator -> estimator, penalty='none' -> "
          "None, loss='log' -> 'log_loss', squared=False -> root_mean_squared_error, ...)",
          sklearn_params.recognise_sklearn, sklearn_params.repair_sklearn, case="sklearn_renamed"),
    Entry("transformers_renamed", "TypeError: TrainingArguments.__init__() got an unexpected keyword argument "
          "'evaluation_strategy' / Trainer(tokenizer=) / cannot import name 'AdamW' from 'transformers'",
          "every name transformers 5 removed, rewritten at once (evaluation_strategy -> eval_strategy, no_cuda -> "
          "use_cpu, warmup_ratio -> warmup_steps, tokenizer -> processing_class, AdamW from torch.optim, removed "
          "switches dropped)", hf_params.recognise_transformers, hf_params.repair_transformers,
          case="transformers_renamed"),
    Entry("dataparallel_prefix", "Error(s) in loading state_dict: Unexpected key(s) \"module.…\"",
          "the checkpoint's 'module.' prefix stripped before load_state_dict", state_dicts.recognise_module_prefix,
          state_dicts.repair_module_prefix, case="dataparallel_prefix"),
    Entry("resized_model_checkpoint", "Error(s) in loading state_dict: size mismatch / missing keys",
          "after a width or depth change nightlab made: load the tensors that still fit (strict=False); otherwise "
          "stop, saying the checkpoint is another model's", state_dicts.recognise_resized_model,
          state_dicts.repair_resized_model, case="resized_model_checkpoint"),
    Entry("linear_in_features", "RuntimeError: mat1 and mat2 shapes cannot be multiplied",
          "the Linear layer's in_features set to what it receives", resources.recognise_linear_in,
          resources.repair_linear_in, case="linear_in_features"),
    Entry("removed_dataset", "ImportError: `load_boston` has been removed from scikit-learn (fetch_mldata, "
          "torchtext.legacy)", "none possible: another dataset is another task; the branch stops, naming the line and "
          "the environment that still ships it", removed_data.recognise_removed_dataset,
          removed_data.repair_removed_dataset, case="removed_dataset"),
    Entry("missing_package", "ModuleNotFoundError: No module named 'x'",
          "none possible offline: the branch stops, naming the package and the importing line",
          packages.recognise_missing_package, packages.repair_missing_package, case="missing_package"),
    Entry("outside_write", "OSError: [Errno 30] Read-only file system: '/home/…/experiments' (an output path "
          "outside the worktree)", "the output path the code names written as a relative one, into the worktree "
          "(else stop: a relative path on the command, or sandbox.writable)", outside_writes.recognise_outside_write,
          outside_writes.repair_outside_write, case="outside_write"),
    Entry("network_access", "URLError / ConnectionError: Temporary failure in name resolution (a download at run time)",
          "none possible: the branch stops, naming the host and the line, with the two ways past it (fetch the files "
          "once outside nightlab, or sandbox.network = true)", network.recognise_network, network.repair_network,
          case="network_access"),
    Entry("out_of_memory", "out of memory (CUDA or CPU allocator, or killed at the memory cap)",
          "half the batch, gradients accumulated over 2 steps (same effective batch)", resources.recognise_oom,
          resources.repair_oom, case="out_of_memory"),
    Entry("nan_loss", "the loss became NaN / inf", "a tenfold smaller learning rate, else gradient clipping",
          resources.recognise_nan, resources.repair_nan, case="nan_loss"),
    Entry("cpu_pinned_gpu_job", "timed out on the CPU in a job that was given a GPU (slots.gpus_per_job)",
          "the \"cpu\" device setting chosen at run time (\"cuda\" when available)", devices.recognise_cpu_pinned,
          devices.repair_cpu_pinned, case="cpu_pinned_gpu_job"),
    Entry("timeout", "timed out", "fewer epochs or steps (x0.5, then x0.7)", resources.recognise_timeout,
          resources.repair_timeout, case="timeout"),
)
