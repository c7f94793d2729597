"""The study's component analysis (analyzer.py `ComponentAnalyzer`) on a Llama or Phi model folder, for the
check in FamilyComponentTests: per circuit sample, as its analysis notebooks call it,

    a = ComponentAnalyzer(model, "{} lives in the city of".format(clean_subject), clean_label, clean_subject)
    rank = a.get_token_rank(model, a.answer_token, pos=-1), prob = a.get_token_probability(model, a.answer_token, pos=-1),
    subject_prob = a.get_token_probability(model, a.subject_last_token, pos=-1),
    min_rank = a.get_min_rank_at_subject(model, a.answer_token), dla = a.calculate_DLA_by_source()

one JSON line per sample ("ROW {...}"). The model is loaded as the study loads it (study_loader.py); packages
the analyzer imports only for plotting (seaborn, plotly, matplotlib) are stubbed when missing.

    python benchmarks/reference/family_components.py STUDY_DIR SHIMS_DIR MODEL_FOLDER llama|phi SAMPLES.jsonl
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_loader  # noqa: E402


def main():
    study, shims, folder, family, samples = sys.argv[1:6]
    study_loader.prepare(study, shims, extra_stubs=("seaborn", "plotly", "plotly.express"))
    import torch
    torch.set_num_threads(1)
    from analyzer import ComponentAnalyzer
    model, _ = study_loader.load(folder, family)
    for line in open(samples):
        if not line.strip():
            continue
        s = json.loads(line)
        a = ComponentAnalyzer(model, "{} lives in the city of".format(s["clean_subject"]), s["clean_label"], s["clean_subject"])
        subject, relation = a.calculate_DLA_by_source()
        print("ROW " + json.dumps({
            "subject_range": [int(a.subject_range[0]), int(a.subject_range[1])],
            "rank": [int(x) for x in a.get_token_rank(model, a.answer_token, pos=-1).tolist()],
            "prob": [float(x) for x in a.get_token_probability(model, a.answer_token, pos=-1).tolist()],
            "subject_prob": [float(x) for x in a.get_token_probability(model, a.subject_last_token, pos=-1).tolist()],
            "min_rank": [int(x) for x in a.get_min_rank_at_subject(model, a.answer_token).tolist()],
            "subject_ratio": [float(x) for row in subject for x in row],
            "relation_ratio": [float(x) for row in relation for x in row]}), flush=True)


if __name__ == "__main__":
    main()
