"""The pass@k plot of a run's summary: bars, or pass@k against the number of given lines for incremental runs."""
from .. import io_utils


def plot(summary, path):
    """pass@k bars, or pass@k against the number of given lines for incremental runs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = summary["metrics"]
    fig, ax = plt.subplots(figsize=(6, 4))
    title = f"{summary['dataset']} ({summary['mode']} mode)"
    if summary["incremental"]:
        groups = m["by_given_lines"]
        xs = sorted(int(i) for i in groups)
        for key in sorted({k for g in groups.values() for k in g if k.startswith("pass@")},
                          key=lambda k: int(k.split("@")[1])):
            ax.plot(xs, [groups[str(x)].get(key, float("nan")) for x in xs], marker="o", label=key)
        ax.set_xlabel("reference lines given")
        ax.legend()
        title += ", incremental"
    else:
        keys = [k for k in m if k.startswith("pass@")]
        ax.bar(keys, [m[k] for k in keys])
        for x, k in enumerate(keys):
            ax.text(x, m[k], f"{m[k]:.3f}", ha="center", va="bottom")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass@k")
    ax.set_title(title)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
